"""How fast the page of `pyro-cvae serve` answers: from the click to the images on the page.

For each run (default: a label run and a pixels run at their default settings on the
bundled MNIST, trained one epoch into a temporary folder; the time of a request does not
depend on how long the weights were trained), `pyro-cvae serve` is started and headless
Chromium (Debian's package, driven by Playwright) clicks, as a user would:

    fill   the run's 4th test image, the top-half mask, no label, K = 8: "Fill" -> 8
           completions shown
    grid   64 samples of class 0: "Generate" -> the grid shown (runs that generate)

The page times each itself (`performance.now()` from the click to the images decoded;
the driver polls for the result every 100 ms, outside that time), `--repeats` times after
one untimed click; the median and the slowest are printed beside the same work as one call of the library in this process (`fill_holes`,
`sample_images`, no HTTP, no page): the difference is what the page and the server add.

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/app_latency.py [RUN_DIR ...]
        [--examples PICTURES]
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

from pyro_cvae.checkpoint import load_run
from pyro_cvae.images import read_images
from pyro_cvae.inpaint import fill_holes, fill_temperature
from pyro_cvae.masks import named_mask
from pyro_cvae.sampling import sample_images
from pyro_cvae.served_run import check_examples, run_examples

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.serving import serving  # noqa: E402
from tests.test_app_browser import CHROMIUM_FLAGS  # noqa: E402


def repeated(measure, repeats: int) -> list[float]:
    """`repeats` results of `measure()` (seconds), after one untimed call."""
    measure()
    return [measure() for _ in range(repeats)]


def stopwatch(action):
    """A measure: the wall seconds of one call of `action`."""

    def measure() -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    return measure


def page_times(browser, address: str, generative: bool, repeats: int) -> dict:
    """Click-to-shown seconds of the page's fill and (when `generative`) grid, as the page
    measures them (`performance.now()` from the click to the images decoded)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(address + "/")
    page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
    page.locator("#examples img").nth(3).click()
    page.wait_for_function("window.cvae.pending === 0")
    page.select_option("#mask", "top-half")
    page.fill("#samples", "8")

    def click(button: str, key: str) -> float:
        page.evaluate(f"window.cvae.seconds.{key} = null")
        page.click(button)
        page.wait_for_function(f"window.cvae.seconds.{key} !== null", polling=100, timeout=60_000)
        return page.evaluate(f"window.cvae.seconds.{key}")

    times = {"fill": repeated(lambda: click("#fill", "fill"), repeats)}
    if generative:
        page.fill("#gen-count", "64")
        times["grid"] = repeated(lambda: click("#generate", "grid"), repeats)
    page.close()
    return times


def library_times(run_dir: Path, examples: Path | None, repeats: int) -> dict:
    """The same requests as library calls: `fill_holes` and `sample_images`."""
    run = load_run(run_dir)
    shape = run.config.image_shape
    pictures = (
        run_examples(run) if examples is None else check_examples(read_images(examples), shape)
    )
    image = pictures[3:4]  # the example the page clicks
    hole = named_mask("top-half", shape[1:])[None]
    temperature = fill_temperature(run.model, run.config)  # as the page fills
    fill = stopwatch(
        lambda: fill_holes(run.model, image, hole, samples=8, seed=0, temperature=temperature)
    )
    times = {"fill": repeated(fill, repeats)}
    if run.model.generative:
        labels = [0] if run.model.num_labels else None
        grid = stopwatch(
            lambda: sample_images(
                run.model, labels, 64, seed=0, temperature=run.config.sample_temperature
            )
        )
        times["grid"] = repeated(grid, repeats)
    return times


def default_runs(folder: Path) -> list[Path]:
    """A label run and a pixels run at their default settings, trained one epoch."""
    runs = []
    for condition in ("label", "pixels"):
        out = folder / condition
        subprocess.run(
            [sys.executable, "-m", "pyro_cvae", "train", "--condition", condition,
             "--epochs", "1", "--out", str(out)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        runs.append(out)
    return runs


@click.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--examples",
    type=click.Path(exists=True, path_type=Path),
    help="Pictures for the runs (serve --examples): needed for folder runs such as CIFAR-10's.",
)
@click.option("--chromium", default="/usr/bin/chromium", show_default=True)
def main(run_dirs, repeats, examples, chromium):
    from playwright.sync_api import sync_playwright

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {repeats} clicks each (after one untimed)")  # fmt: skip
    print("| run | request | page: click to shown, median | slowest | library call, median |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for run_dir in run_dirs or default_runs(Path(scratch)):
            run = load_run(run_dir)
            name = f"{run_dir} ({run.config.condition}, {run.config.arch}, z {run.config.z_dim})"
            library = library_times(run_dir, examples, repeats)
            extra = () if examples is None else ("--examples", str(examples))
            with serving(run_dir, *extra) as address:
                page = page_times(browser, address, run.model.generative, repeats)
            for request, seconds in page.items():
                print(f"| {name} | {request} | {statistics.median(seconds):.3f} s | "
                      f"{max(seconds):.3f} s | {statistics.median(library[request]):.3f} s |")  # fmt: skip
        browser.close()


if __name__ == "__main__":
    main()
