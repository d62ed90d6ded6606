"""A trained run as the web page of `pyro-cvae serve` uses it: every request of the page
answered as tensors, without HTTP, one at a time.

Images here are float32 `[C, H, W]` in [0, 1] of the run's own shape; a hole is bool
`[H, W]`, True where a pixel is missing. Pictures from the page are converted to the
run's channels and resized to its size. Everything a request may not ask (an unknown
class, a hole of the wrong size, too many completions) is a `UsageError` or `DataError`
with a one-line message the page shows. A lock makes concurrent requests wait for each
other, so that one request's random state and results cannot mix with another's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from .checkpoint import LoadedRun
from .errors import DataError, UsageError
from .images import decode_picture, to_channels
from .inpaint import fill_holes, fill_temperature
from .masks import NAMED_MASKS, named_mask
from .posterior import label_posterior
from .sampling import (
    LATENT_EXTENT,
    decode_latent_points,
    has_latent_map,
    latent_grid,
    sample_images,
)

MAX_COMPLETIONS = 16
MAX_EXAMPLES = 100
MAX_UPLOAD_BYTES = 6 << 20  # a picture file; base64 makes it 4/3 as large on the wire
MAX_SAMPLES = 100
MAX_SEED = 2**32 - 1  # the seeds NumPy accepts, which Pyro seeds too


def run_examples(run: LoadedRun, limit: int = MAX_EXAMPLES) -> torch.Tensor:
    """The first `limit` test images `[limit, C, H, W]` of the dataset the run was trained
    on (MNIST, Fashion-MNIST or CIFAR-10, found as `train` finds them, or in the folder
    the run was trained from); a `DataError` when they cannot be found, and for a folder
    of the user's pictures, which would be decoded whole and cached: name pictures instead
    (`serve --examples`)."""
    from .data import dataset_spec, load_run_split

    if dataset_spec(run.config.dataset).kind == "folder":
        raise DataError("a folder run's pictures are picked with --examples DIR")
    return load_run_split(run.config, "test", run.data_dir).images[:limit]


def check_examples(images: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`images` `[N, C', H, W]` (at most `MAX_EXAMPLES` kept) in the run's channels, or a
    `DataError` when their size is not the run's `shape` (C, H, W)."""
    if tuple(images.shape[-2:]) != tuple(shape[1:]):
        size = "x".join(map(str, images.shape[-2:]))
        raise DataError(f"the examples are {size} pictures; this run's are {shape[1]}x{shape[2]}")
    return to_channels(images[:MAX_EXAMPLES], shape[0])


class ServedRun:
    """The run `run` (its model in eval mode) and `examples` `[N, C, H, W]` of its shape
    to pick from (its test images, say; None: none)."""

    def __init__(self, run: LoadedRun, examples: torch.Tensor | None = None) -> None:
        self.config, self.model = run.config, run.model
        self.examples = examples
        # a none run keeps its dataset's class names in its config, but has no labels
        self.classes = tuple(self.config.label_names) if self.model.num_labels else ()
        self._lock = threading.Lock()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.image_shape)

    def describe(self) -> dict:
        """What the page needs to know of the run: its classes, image shape and which
        controls apply."""
        config, model = self.config, self.model
        return {
            "condition": config.condition,
            "dataset": config.dataset,
            "image_shape": list(self.image_shape),
            "classes": list(self.classes),
            "fill_method": model.fill_method,
            "can_generate": model.generative,
            "can_name": bool(model.generative and self.classes),
            "latent_map": has_latent_map(model),
            "latent_extent": LATENT_EXTENT,
            "masks": list(NAMED_MASKS),
            "examples": 0 if self.examples is None else len(self.examples),
            "max_completions": MAX_COMPLETIONS,
            "max_samples": MAX_SAMPLES,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "draw": self.image_shape[0] == 1,
        }

    def warm_up(self) -> None:
        """Answer one small request of each kind, so that the page's first click is as
        quick as the next."""
        label = self.classes[0] if self.classes else None
        blank = torch.zeros(self.image_shape)
        self.fill(blank, named_mask("top-half", self.image_shape[1:]), label, 1, 0)
        if self.model.generative:
            self.generate(label, 1, 0)

    def picture(self, data: bytes) -> torch.Tensor:
        """An uploaded PNG or JPEG as an image of the run's shape `[C, H, W]`."""
        channels, height, width = self.image_shape
        return decode_picture(data, channels, (height, width))

    def example(self, index: int) -> torch.Tensor:
        """Example image `index` `[C, H, W]`."""
        count = 0 if self.examples is None else len(self.examples)
        if not 0 <= index < count:
            raise UsageError(f"there is no example {index}; this page has {count}")
        return self.examples[index]

    def hole(self, painted: Sequence[int] | None, mask: str | None = None) -> torch.Tensor:
        """The hole `[H, W]`: the painted pixels (`painted`, H * W zeros and ones row by
        row) and the named mask `mask` (one of `NAMED_MASKS`) together."""
        size = self.image_shape[1:]
        hole = torch.zeros(size, dtype=torch.bool)
        if painted is not None:
            if len(painted) != size[0] * size[1] or not all(v in (0, 1) for v in painted):
                raise DataError(f"the painted hole must be {size[0]}x{size[1]} zeros and ones")
            hole = torch.tensor(list(painted), dtype=torch.bool).view(size)
        if mask:
            if mask not in NAMED_MASKS:
                raise UsageError(f"unknown mask {mask!r}; choose from {', '.join(NAMED_MASKS)}")
            hole = hole | named_mask(mask, size)
        return hole

    def _label(self, name: str | None) -> int | None:
        """The index of class `name` (a class name or number), or None for no label."""
        if name is None or name == "":
            return None
        if not self.classes:
            raise UsageError("this run has no classes: leave the label out")
        (index,) = self.config.label_indices([name])
        return index

    @staticmethod
    def _check_seed(seed: int) -> None:
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"the seed must be a whole number from 0 to {MAX_SEED}")

    def fill(
        self, image: torch.Tensor, hole: torch.Tensor, label: str | None, samples: int, seed: int
    ) -> torch.Tensor:
        """`samples` completions `[K, C, H, W]` of `image` `[C, H, W]` with `hole` `[H, W]`
        as `pyro-cvae inpaint` fills them (the run's own method, at its sampling
        temperature): the observed pixels are the image's own, exactly."""
        if not 1 <= samples <= MAX_COMPLETIONS:
            raise UsageError(f"ask for 1 to {MAX_COMPLETIONS} completions")
        if not hole.any():
            raise UsageError("paint a hole or choose a mask first")
        self._check_seed(seed)
        index = self._label(label)
        labels = None if index is None else torch.tensor([index])
        with self._lock:
            return fill_holes(
                self.model,
                image[None],
                hole[None],
                labels,
                samples=samples,
                seed=seed,
                temperature=fill_temperature(self.model, self.config),
            )[0]

    def generate(self, label: str | None, count: int, seed: int) -> torch.Tensor:
        """`count` samples `[count, C, H, W]` of class `label` (None: a run without
        labels), at the run's sampling temperature."""
        if not 1 <= count <= MAX_SAMPLES:
            raise UsageError(f"ask for 1 to {MAX_SAMPLES} samples")
        self._check_seed(seed)
        index = self._label(label)
        with self._lock:
            return sample_images(
                self.model,
                None if index is None else [index],
                count,
                seed=seed,
                temperature=self.config.sample_temperature,
            )

    def latent_map(self, label: str | None) -> torch.Tensor:
        """The latent map of class `label` (a 2-d latent): `[side * side, C, H, W]`, row by
        row, the points of `sampling.latent_grid()`."""
        index = self._label(label)
        with self._lock:
            return decode_latent_points(self.model, index, latent_grid())

    def decode_point(self, label: str | None, point: tuple[float, float]) -> torch.Tensor:
        """The image `[C, H, W]` at one point of the latent map, in standard deviations of
        p(z | y) (each coordinate within +-LATENT_EXTENT)."""
        if not all(abs(float(v)) <= LATENT_EXTENT for v in point):
            raise UsageError(f"a point of the map lies within +-{LATENT_EXTENT} on each axis")
        index = self._label(label)
        with self._lock:
            return decode_latent_points(self.model, index, torch.tensor([point]))[0]

    def name(self, image: torch.Tensor, hole: torch.Tensor | None, seed: int) -> dict:
        """p(class | image) by Bayes' rule, as `pyro-cvae classify` computes it, for the
        whole image and, when `hole` `[H, W]` has missing pixels, for the observed ones
        alone: {"classes": [...], "whole": [...], "observed": [...] or None}."""
        if not (self.model.generative and self.classes):
            raise UsageError("naming the class needs a run trained with --condition label")
        self._check_seed(seed)
        with self._lock:
            whole = label_posterior(self.model, image[None], seed=seed)[0]
            observed = None
            if hole is not None and hole.any():
                observed = label_posterior(self.model, image[None], hole[None], seed=seed)[0]
        return {
            "classes": list(self.classes),
            "whole": whole.tolist(),
            "observed": None if observed is None else observed.tolist(),
        }
