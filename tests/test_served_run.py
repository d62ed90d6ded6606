"""What the web page asks of a run, without HTTP or a browser: `pyro_cvae.served_run`."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_cvae.checkpoint import load_run
from pyro_cvae.data import load_split
from pyro_cvae.errors import CvaeError, DataError
from pyro_cvae.images import decode_picture, encode_png
from pyro_cvae.inpaint import fill_temperature
from pyro_cvae.posterior import label_posterior
from pyro_cvae.sampling import LATENT_EXTENT, LATENT_SIDE
from pyro_cvae.served_run import MAX_COMPLETIONS, ServedRun, check_examples


def stroke(size=(28, 28)) -> torch.Tensor:
    """A diagonal brush stroke three pixels wide across the middle: `[H, W]` bool."""
    rows, cols = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    return ((rows - cols).abs() <= 1) & (rows > 5) & (rows < 22)


@pytest.fixture(scope="module")
def digit() -> torch.Tensor:
    """A test digit never trained on (the tiny data holds the first 500): `[1, 28, 28]`."""
    return load_split("mnist", "test").images[-1]


@pytest.mark.parametrize("run", ["label_run", "pixels_run"])
def test_fill_keeps_the_observed_pixels_and_gives_k_completions(run, digit, request):
    served = ServedRun(load_run(request.getfixturevalue(run)))
    hole = stroke()
    completions = served.fill(digit, hole, None, 4, seed=0)
    assert completions.shape == (4, 1, 28, 28)
    assert torch.equal(completions[:, :, ~hole], digit[:, ~hole].expand(4, -1, -1))
    assert not torch.equal(completions[0, :, hole], completions[1, :, hole])
    again = served.fill(digit, hole, "3", 4, seed=0)
    assert torch.equal(again[:, :, ~hole], completions[:, :, ~hole])


def cold(run_dir):
    """The run in `run_dir` as if trained with `--sample-temperature 0`."""
    loaded = load_run(run_dir)
    return dataclasses.replace(loaded, config=loaded.config.replace(sample_temperature=0.0))


def test_the_page_draws_and_fills_at_the_runs_sampling_temperature(label_run, pixels_run, digit):
    label = ServedRun(cold(label_run))  # z at the mean of p(z | y), whatever the seed
    assert torch.equal(label.generate("3", 4, seed=1), label.generate("3", 4, seed=2))
    warm = ServedRun(load_run(label_run))
    assert not torch.equal(warm.generate("3", 4, seed=1), warm.generate("3", 4, seed=2))
    fills = label.fill(digit, stroke(), "3", 2, seed=0)  # posterior fills: not tempered
    assert not torch.equal(fills[0], fills[1])
    pixels = ServedRun(cold(pixels_run))  # with the label given, the K fills are one
    fills = pixels.fill(digit, stroke(), "3", 3, seed=0)
    assert (fills - fills[0]).abs().max() < 1e-6  # up to the rounding of a batch
    run = cold(pixels_run)
    assert fill_temperature(run.model, run.config) == 0.0
    assert fill_temperature(run.model, run.config, given=0.5) == 0.5
    assert fill_temperature(run.model, run.config, method="posterior") == 1.0


def test_painted_hole_and_named_mask_add_up(label_run):
    served = ServedRun(load_run(label_run))
    painted = stroke()
    hole = served.hole(painted.flatten().int().tolist(), "top-half")
    assert hole[:14].all() and torch.equal(hole[14:], painted[14:])
    assert torch.equal(served.hole(None, "left-half")[:, :14], torch.ones(28, 14, dtype=torch.bool))


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        (lambda s, d: s.fill(d, stroke(), "cat", 2, 0), "its classes are 0, 1, 2"),
        (lambda s, d: s.fill(d, stroke(), None, 0, 0), f"1 to {MAX_COMPLETIONS} completions"),
        (lambda s, d: s.fill(d, stroke(), None, MAX_COMPLETIONS + 1, 0), "completions"),
        (lambda s, d: s.fill(d, torch.zeros(28, 28, dtype=torch.bool), None, 2, 0), "paint a hole"),
        (lambda s, d: s.hole([0, 1] * 10, None), "must be 28x28 zeros and ones"),
        (lambda s, d: s.hole([2] * 784, None), "zeros and ones"),
        (lambda s, d: s.hole(None, "../etc/passwd"), "unknown mask"),
        (lambda s, d: s.generate("7", 0, 0), "1 to 100 samples"),
        (lambda s, d: s.decode_point("7", (0.0, LATENT_EXTENT + 1)), "within"),
        (lambda s, d: s.example(0), "there is no example 0"),
        (lambda s, d: s.picture(b"GIF89a not a picture"), "not a readable PNG or JPEG"),
    ],
)
def test_requests_the_run_cannot_answer_are_one_line_errors(label_run, digit, ask, message):
    served = ServedRun(load_run(label_run))
    with pytest.raises(CvaeError, match=message) as caught:
        ask(served, digit)
    assert "\n" not in str(caught.value)


def test_name_is_bayes_rule_as_classify_computes_it(label_run, digit):
    run = load_run(label_run)
    served = ServedRun(run)
    hole = stroke()
    named = served.name(digit, hole, seed=0)
    assert named["classes"] == [str(i) for i in range(10)]
    whole = label_posterior(run.model, digit[None], seed=0)[0]
    observed = label_posterior(run.model, digit[None], hole[None], seed=0)[0]
    assert np.allclose(named["whole"], whole.tolist()) and abs(sum(named["whole"]) - 1) < 1e-5
    assert np.allclose(named["observed"], observed.tolist())
    assert served.name(digit, None, seed=0)["observed"] is None


def test_a_pixels_run_fills_but_neither_generates_nor_names(pixels_run, digit):
    served = ServedRun(load_run(pixels_run))
    info = served.describe()
    assert info["fill_method"] == "amortized" and not info["can_generate"]
    assert not info["can_name"]
    with pytest.raises(CvaeError, match="use `pyro-cvae inpaint`"):
        served.generate("3", 4, 0)
    with pytest.raises(CvaeError, match="--condition label"):
        served.name(digit, None, 0)


def test_the_latent_map_and_a_clicked_point_decode_the_same_z(label_run):
    served = ServedRun(load_run(label_run))
    assert served.describe()["latent_map"]
    tiles = served.latent_map("4")
    assert tiles.shape == (LATENT_SIDE * LATENT_SIDE, 1, 28, 28)
    # the top-left tile is the point (-extent, +extent): first coordinate left to right
    corner = served.decode_point("4", (-LATENT_EXTENT, LATENT_EXTENT))
    assert torch.allclose(corner, tiles[0], atol=1e-6)
    assert not torch.allclose(corner, tiles[-1], atol=1e-3)


def test_samples_come_in_the_count_asked_and_repeat_with_the_seed(label_run):
    served = ServedRun(load_run(label_run))
    first = served.generate("2", 64, seed=1)
    assert first.shape == (64, 1, 28, 28)
    assert torch.equal(first, served.generate("2", 64, seed=1))


def test_an_upload_is_read_at_the_runs_shape(label_run):
    served = ServedRun(load_run(label_run))
    colour = np.zeros((40, 50, 3), np.uint8)
    colour[:, 25:] = 255
    buffer = io.BytesIO()
    Image.fromarray(colour).save(buffer, format="JPEG")
    picture = served.picture(buffer.getvalue())
    assert picture.shape == (1, 28, 28)
    assert picture[0, :, :10].max() < 0.1 and picture[0, :, -10:].min() > 0.9


def test_png_round_trip_is_exact_for_8_bit_pixels():
    levels = torch.randint(0, 256, (3, 7, 5)).float() / 255
    assert torch.equal(decode_picture(encode_png(levels)), levels)
    assert torch.equal(decode_picture(encode_png(levels[:1])), levels[:1])


def test_examples_must_have_the_runs_size():
    images = torch.rand(120, 3, 28, 28)
    kept = check_examples(images, (1, 28, 28))
    assert kept.shape == (100, 1, 28, 28)
    with pytest.raises(DataError, match="the examples are 32x32 pictures; this run's are 28x28"):
        check_examples(torch.rand(2, 1, 32, 32), (1, 28, 28))


def test_a_run_without_labels_warms_up_fills_and_generates_without_one(vae_run, digit):
    served = ServedRun(load_run(vae_run))
    served.warm_up()
    info = served.describe()
    assert info["classes"] == [] and info["can_generate"] and not info["can_name"]
    assert served.generate(None, 4, seed=0).shape == (4, 1, 28, 28)
    hole = stroke()
    completions = served.fill(digit, hole, None, 2, seed=0)
    assert torch.equal(completions[:, :, ~hole], digit[:, ~hole].expand(2, -1, -1))
    with pytest.raises(CvaeError, match="this run has no classes"):
        served.generate("3", 4, seed=0)


def test_a_16_bit_grey_upload_keeps_its_levels_in_colour():
    levels = (np.arange(24 * 16).reshape(24, 16) * 170).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG")
    colour = decode_picture(buffer.getvalue(), channels=3)
    expected = torch.from_numpy(levels / 65535.0).float()
    assert colour.shape == (3, 24, 16)
    assert torch.allclose(colour, expected.expand(3, -1, -1), atol=1e-6)
