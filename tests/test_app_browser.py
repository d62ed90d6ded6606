"""The page of `pyro-cvae serve` in a real browser: headless Chromium (Debian's `chromium`
package, which `make test` installs when missing) driven by Playwright.

Without Chromium or Playwright these tests are skipped, except under CI (`CI` set), where
they fail. `PYRO_CVAE_SCREENSHOT=PATH` saves the screenshot of the label run's page there
(docs/figures/app.png is made so, see docs/app.md); `PYRO_CVAE_SCREENSHOT_RUN=RUN_DIR`
serves that run instead of the tiny one trained for the tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyro_cvae.data import load_split
from tests.conftest import run_cli
from tests.serving import serving, url_pixels
from tests.test_folders import make_folder

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI must run the browser tests")
    pytest.skip(f"{what} is missing (apt-get install chromium; pip install playwright)")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Playwright, for the module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright")
    executable = os.environ.get("PYRO_CVAE_CHROMIUM") or shutil.which("chromium")
    if not executable:
        _missing("Chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_page(browser, address: str):
    """A new page at `address`, once its script has set it up; browser errors collected
    in `page.problems`."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(address + "/")
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
    return page


def settle(page) -> None:
    """Wait until the page has answered every action asked of it."""
    page.wait_for_function("window.cvae.pending === 0", timeout=60_000)


def paint_stroke(page) -> np.ndarray:
    """Drag the brush across the editor; the hole the page holds now, `[H, W]` bool."""
    box = page.locator("#editor").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.6, steps=12)
    page.mouse.up()
    height, width = page.evaluate("[window.cvae.height, window.cvae.width]")
    return np.array(page.evaluate("Array.from(window.cvae.hole)"), bool).reshape(height, width)


def fill(page, samples: int) -> list[np.ndarray]:
    """Ask for `samples` completions; their pixels."""
    page.fill("#samples", str(samples))
    page.click("#fill")
    page.wait_for_function(
        f"document.querySelectorAll('#results img.completion').length === {samples}",
        timeout=60_000,
    )
    settle(page)
    links = page.locator("#results a.download")
    assert links.count() == samples
    return [url_pixels(links.nth(i).get_attribute("href")) for i in range(samples)]


@pytest.fixture(scope="module")
def test_digit_png(tmp_path_factory) -> Path:
    """A test digit the tiny runs never saw, as a PNG file."""
    digit = (load_split("mnist", "test").images[-5, 0].numpy() * 255).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("upload") / "digit.png"
    Image.fromarray(digit).save(path)
    return path


@pytest.fixture(scope="module")
def label_address(label_run):
    with serving(Path(os.environ.get("PYRO_CVAE_SCREENSHOT_RUN", label_run))) as address:
        yield address


def test_a_painted_stroke_is_filled_and_the_rest_of_the_upload_kept(
    browser, label_address, test_digit_png, tmp_path
):
    page = open_page(browser, label_address)
    page.set_input_files("#upload", str(test_digit_png))
    settle(page)
    hole = paint_stroke(page)
    assert 10 < hole.sum() < hole.size / 2
    completions = fill(page, 4)
    uploaded = np.asarray(Image.open(test_digit_png))
    for completion in completions:
        assert np.array_equal(completion[~hole], uploaded[~hole])
    assert page.text_content("#error") == "" and not page.problems
    assert page.locator("#results img.holed").count() == 1

    page.click("#name")
    page.wait_for_selector("#names tr >> nth=10")
    settle(page)
    assert page.locator("#names tr").count() == 11  # a header and the 10 classes

    page.select_option("#gen-label", "7")
    page.click("#generate")
    page.wait_for_selector("#grid:not([hidden])")
    page.wait_for_selector("#latent-box:not([hidden])")
    settle(page)
    assert url_pixels(page.get_attribute("#grid", "src")).shape == (8 * 29 - 1, 8 * 29 - 1)
    # the centre of the map's top-left tile decodes that tile's point
    tiles = url_pixels(page.get_attribute("#latent-map", "src"))
    zoom = page.evaluate("(m => m.width / m.naturalWidth)(document.getElementById('latent-map'))")
    page.locator("#latent-map").click(position={"x": 14 * zoom, "y": 14 * zoom})
    page.wait_for_selector("#latent-point:not([hidden])")
    settle(page)
    assert "(-2.00, 2.00) standard deviations" in page.text_content("#latent-z")
    point = url_pixels(page.get_attribute("#latent-point", "src")).astype(int)
    assert np.abs(point - tiles[:28, :28]).max() <= 1
    assert page.text_content("#error") == "" and not page.problems
    screenshot = Path(os.environ.get("PYRO_CVAE_SCREENSHOT", tmp_path / "page.png"))
    page.screenshot(path=str(screenshot), full_page=True)
    assert Image.open(screenshot).size[0] >= 1000


def test_a_bad_upload_shows_its_error_on_the_page(browser, label_address, tmp_path):
    page = open_page(browser, label_address)
    (tmp_path / "notes.png").write_text("these are notes, not a picture")
    page.set_input_files("#upload", str(tmp_path / "notes.png"))
    settle(page)
    assert "not a readable PNG or JPEG image" in page.text_content("#error")
    (tmp_path / "huge.jpg").write_bytes(b"\xff" * (7 << 20))
    page.set_input_files("#upload", str(tmp_path / "huge.jpg"))
    settle(page)
    assert "too large" in page.text_content("#error")
    page.click("#clear-hole")
    page.click("#fill")
    settle(page)
    assert "paint a hole or choose a mask first" in page.text_content("#error")
    assert not page.problems


def test_a_pixels_run_fills_a_named_mask_from_an_example(browser, pixels_run):
    with serving(pixels_run) as address:
        page = open_page(browser, address)
        assert page.locator("#generate-section").is_hidden()
        assert page.locator("#name-section").is_hidden()
        page.locator("#examples img").nth(4).click()
        settle(page)
        page.select_option("#mask", "top-half")
        hole = np.array(page.evaluate("Array.from(window.cvae.hole)"), bool).reshape(28, 28)
        assert hole[:14].all() and not hole[14:].any()
        example = url_pixels(page.locator("#examples img").nth(4).get_attribute("src"))
        for completion in fill(page, 4):
            assert np.array_equal(completion[14:], example[14:])
        page.click("#clear-image")
        page.check("#tool-ink")
        assert paint_stroke(page)[14:].sum() == 0  # ink changes the picture, not the hole
        drawn = url_pixels(page.evaluate("window.cvae.imageURL()"))
        assert drawn.ndim == 3 and (drawn[..., 0] > 128).sum() > 20  # a stroke of ink
        assert (drawn[..., 0] == 0).sum() > 600  # on a blank picture
        assert not page.problems


def test_the_page_works_for_a_colour_run_of_oblong_pictures(browser, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "pics", per_class=12, size=(12, 20))
    run_cli("train", "--dataset", "folder", "--data-dir", root, "--hidden", "32", "--z-dim", 2,
            "--epochs", 2, "--out", tmp_path / "run", "--device", "cpu")  # fmt: skip
    picture = root / "train" / "red" / "001.png"
    with serving(tmp_path / "run", "--examples", str(root / "train" / "blue")) as address:
        page = open_page(browser, address)
        assert page.locator("#examples img").count() == 12
        assert page.locator("#tool-ink-label").is_hidden()  # ink is for grey pictures
        page.set_input_files("#upload", str(picture))
        settle(page)
        hole = paint_stroke(page)
        page.select_option("#label", "red")
        uploaded = np.asarray(Image.open(picture))
        box = page.locator("#editor").bounding_box()
        assert abs(box["width"] / box["height"] - 20 / 12) < 0.05
        for completion in fill(page, 2):
            assert completion.shape == (12, 20, 3)
            assert np.array_equal(completion[~hole], uploaded[~hole])
        page.click("#generate")
        page.wait_for_selector("#grid:not([hidden])")
        settle(page)
        assert page.text_content("#error") == "" and not page.problems


def test_a_run_without_labels_has_no_label_controls(browser, vae_run):
    with serving(vae_run) as address:
        page = open_page(browser, address)
        assert page.locator("#label").is_hidden() and page.locator("#gen-label").is_hidden()
        assert page.locator("#name-section").is_hidden()
        page.select_option("#mask", "bottom-half")
        example = url_pixels(page.locator("#examples img").nth(0).get_attribute("src"))
        for completion in fill(page, 2):
            assert np.array_equal(completion[:14], example[:14])
        page.click("#generate")
        page.wait_for_selector("#grid:not([hidden])")
        settle(page)
        assert page.text_content("#error") == "" and not page.problems
