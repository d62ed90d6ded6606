"""The web app of `pyro-cvae serve`: one page (`page/index.html`) and the JSON requests it
makes of a `ServedRun`. Needs the `app` extra (Starlette; uvicorn serves it).

Images cross the wire as PNG data URLs (`data:image/png;base64,...`) of the run's size;
a hole as H * W zeros and ones, row by row. Every answer is JSON; a request the run
cannot answer gets `{"error": "one line"}` and status 400 (413 for an upload over
`MAX_REQUEST_BYTES`, 415 for a body not declared as JSON), never a traceback; a `Host`
header other than the names it listens on gets 400. The app reads no file but its page,
and writes none: the page downloads completions from the data URLs it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from importlib import resources

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .errors import CvaeError, DataError, first_line
from .images import encode_png
from .masks import named_mask
from .plots import tile
from .sampling import LATENT_SIDE
from .served_run import MAX_UPLOAD_BYTES, ServedRun

# a picture travels base64-encoded (4/3 of its size), beside a hole of H * W numbers
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + (1 << 20)
_DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,")
_HOLE_COLOUR = (0.9, 0.1, 0.1)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
_log = logging.getLogger(__name__)


class RequestTooLarge(DataError):
    """A request body over `MAX_REQUEST_BYTES`."""


class NotJson(DataError):
    """A request body that is not declared as JSON."""


def allowed_hosts(host: str) -> list[str]:
    """The `Host` headers the app answers when it listens on `host`: the loopback names
    and `host` itself, or any for a wildcard address (0.0.0.0, ::). Other names are
    refused, so that a web page elsewhere cannot reach a local server by DNS rebinding."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return list(dict.fromkeys([*LOOPBACK_NAMES, host, f"[{host}]" if ":" in host else host]))


def data_url(image: torch.Tensor) -> str:
    """An image `[C, H, W]` in [0, 1] as a PNG data URL."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def data_url_bytes(text: object) -> bytes:
    """The file bytes of a PNG or JPEG data URL (a `DataError` for anything else)."""
    if not isinstance(text, str) or not text.startswith(_DATA_URL_PREFIXES):
        raise DataError("expected a PNG or JPEG picture (a data: URL)")
    try:
        return base64.b64decode(text.partition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        raise DataError("the picture's data is not valid base64") from None


def grid_image(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Images `[rows * cols, C, H, W]` tiled into one image `[C, H', W']` (one white pixel
    between them)."""
    grid = torch.from_numpy(tile(images, rows, cols))
    return grid[None] if grid.dim() == 2 else grid.permute(2, 0, 1)


def show_hole(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The image `[C, H, W]` in colour `[3, H, W]`, its hole `[H, W]` painted red."""
    shown = image.expand(3, -1, -1).clone()
    shown[:, hole] = torch.tensor(_HOLE_COLOUR)[:, None]
    return shown


async def _json_body(request: Request) -> dict:
    """The request's JSON object; a body over `MAX_REQUEST_BYTES` is refused (and read no
    further than `4 * MAX_REQUEST_BYTES`, so that the sender gets the answer rather than a
    reset connection; beyond that the connection is closed). The body must be declared
    `application/json`, which a page of another origin cannot send without the browser
    asking this server first (and this server does not answer such questions)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise NotJson("send JSON (Content-Type: application/json)")
    body, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_REQUEST_BYTES:
            body += chunk
        elif size > 4 * MAX_REQUEST_BYTES:
            break
    if size > MAX_REQUEST_BYTES:
        raise RequestTooLarge(_too_large())
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON, numbers too long, nesting too deep
        raise DataError("the request is not JSON") from None
    if not isinstance(document, dict):
        raise DataError("the request must be a JSON object")
    return document


def _too_large() -> str:
    return f"the upload is too large (a picture of {MAX_UPLOAD_BYTES >> 20} MB at most)"


def _integer(document: dict, key: str, default: int) -> int:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{key} must be a whole number")
    return value


def _text(document: dict, key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{key} must be text")
    return value


def create_app(served: ServedRun, hosts: list[str] | None = None) -> Starlette:
    """The Starlette app serving `served`'s page and requests to the `Host` names `hosts`
    (`allowed_hosts`; default: the loopback names)."""
    page = resources.files("pyro_cvae").joinpath("page/index.html").read_text("utf-8")

    def image_of(document: dict) -> torch.Tensor:
        return served.picture(data_url_bytes(document.get("image")))

    def hole_of(document: dict) -> torch.Tensor:
        painted = document.get("hole")
        if painted is not None and not isinstance(painted, list):
            raise DataError("hole must be a list of zeros and ones")
        return served.hole(painted, _text(document, "mask"))

    def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    def run_info(document: dict) -> dict:
        info = served.describe()
        size = served.image_shape[1:]
        info["mask_holes"] = {
            name: named_mask(name, size).flatten().int().tolist() for name in info["masks"]
        }
        return info

    def examples(document: dict) -> dict:
        count = served.describe()["examples"]
        return {"images": [data_url(served.example(i)) for i in range(count)]}

    def picture(document: dict) -> dict:
        return {"image": data_url(image_of(document))}

    def fill(document: dict) -> dict:
        image, hole = image_of(document), hole_of(document)
        started = time.perf_counter()
        completions = served.fill(
            image,
            hole,
            _text(document, "label"),
            _integer(document, "samples", 8),
            _integer(document, "seed", 0),
        )
        return {
            "input": data_url(show_hole(image, hole)),
            "completions": [data_url(c) for c in completions],
            "seconds": round(time.perf_counter() - started, 4),
        }

    def sample(document: dict) -> dict:
        count = _integer(document, "count", 64)
        started = time.perf_counter()
        images = served.generate(_text(document, "label"), count, _integer(document, "seed", 0))
        cols = min(count, max(1, round(count**0.5)))
        padded = torch.cat([images, images.new_ones(-count % cols, *images.shape[1:])])
        return {
            "grid": data_url(grid_image(padded, len(padded) // cols, cols)),
            "count": count,
            "seconds": round(time.perf_counter() - started, 4),
        }

    def latent_map(document: dict) -> dict:
        images = served.latent_map(_text(document, "label"))
        return {
            "map": data_url(grid_image(images, LATENT_SIDE, LATENT_SIDE)),
            "side": LATENT_SIDE,
        }

    def latent_point(document: dict) -> dict:
        point = document.get("point")
        if not (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        ):
            raise DataError("point must be two numbers")
        return {"image": data_url(served.decode_point(_text(document, "label"), tuple(point)))}

    def name(document: dict) -> dict:
        image, hole = image_of(document), hole_of(document)
        return served.name(image, hole, _integer(document, "seed", 0))

    def endpoint(answer, method: str):
        async def handle(request: Request) -> JSONResponse:
            try:
                document = await _json_body(request) if method == "POST" else {}
                return JSONResponse(await run_in_threadpool(answer, document))
            except RequestTooLarge as error:
                return JSONResponse({"error": str(error)}, status_code=413)
            except NotJson as error:
                return JSONResponse({"error": str(error)}, status_code=415)
            except CvaeError as error:
                return JSONResponse({"error": " ".join(str(error).split())}, status_code=400)
            except Exception as error:  # one line on the page and in the log, no traceback
                message = f"unexpected {type(error).__name__}: {first_line(error)}"
                _log.error("pyro-cvae serve: %s: %s", request.url.path, message)
                return JSONResponse({"error": message}, status_code=500)

        return Route(f"/api/{answer.__name__.replace('_', '-')}", handle, methods=[method])

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        endpoint(run_info, "GET"),
        endpoint(examples, "GET"),
        endpoint(picture, "POST"),
        endpoint(fill, "POST"),
        endpoint(sample, "POST"),
        endpoint(latent_map, "POST"),
        endpoint(latent_point, "POST"),
        endpoint(name, "POST"),
    ]
    trusted = Middleware(TrustedHostMiddleware, allowed_hosts=hosts or list(LOOPBACK_NAMES))
    return Starlette(routes=routes, middleware=[trusted])
