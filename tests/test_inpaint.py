"""Hole filling end to end: input formats, kept pixels, diversity, and a beaten baseline."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyro
import pytest
import torch
from PIL import Image
from pyro import poutine

from pyro_cvae.checkpoint import load_run
from pyro_cvae.data import load_split
from pyro_cvae.evaluate import hole_nll, mean_image_nll
from pyro_cvae.masks import parse_mask
from pyro_cvae.model import TemperedLatent

from .conftest import idx_bytes, run_cli


def _observed_unchanged(inputs, completions, mask):
    hole = parse_mask(mask).holes(1, size=(28, 28))[0].numpy()
    expanded = inputs if completions.ndim == 3 else inputs[:, None]
    return np.array_equal(
        np.where(hole, 0, completions),
        np.where(hole, 0, np.broadcast_to(expanded, completions.shape)),
    )


@pytest.mark.parametrize("mask", ["top-half", "center", "quadrant-br", "box:0,0,28,10"])
def test_inpaint_keeps_observed_pixels(pixels_run, test_digits, tmp_path, mask):
    images, _ = test_digits
    run_cli(
        "inpaint",
        pixels_run,
        "--mask",
        mask,
        "--input",
        images,
        "--samples",
        3,
        "--out",
        tmp_path / "out",
    )
    completions = np.load(tmp_path / "out.npy")
    inputs = np.load(images)
    assert completions.shape == (40, 3, 28, 28) and completions.dtype == np.float32
    assert 0 <= completions.min() and completions.max() <= 1
    assert _observed_unchanged(inputs, completions, mask)


def test_k_completions_differ_where_the_hole_is_large(pixels_run, test_digits, tmp_path):
    """With three quadrants missing, the K completions of an image are not copies."""
    images, _ = test_digits
    run_cli(
        "inpaint",
        pixels_run,
        "--mask",
        "not:quadrant-bl",
        "--input",
        images,
        "--samples",
        8,
        "--seed",
        1,
        "--out",
        tmp_path / "out",
    )
    hole = parse_mask("not:quadrant-bl").holes(1, size=(28, 28))[0].numpy()
    completions = np.load(tmp_path / "out.npy")[:, :, hole]
    assert completions.std(axis=1).mean() > 0.005
    assert all(not np.array_equal(c[0], c[1]) for c in completions)


def test_temperature_draws_completions_nearer_the_typical_one(
    pixels_run, label_run, test_digits, tmp_path
):
    images, labels = test_digits
    hole = parse_mask("not:quadrant-bl").holes(1, size=(28, 28))[0].numpy()
    spread = {}
    for temperature in ("1", "0.5", "0"):
        out = tmp_path / f"t{temperature}"
        run_cli("inpaint", pixels_run, "--mask", "not:quadrant-bl", "--input", images,
                "--labels", labels, "--samples", 8, "--seed", 1,
                "--temperature", temperature, "--out", out)  # fmt: skip
        completions = np.load(f"{out}.npy")
        assert _observed_unchanged(np.load(images), completions, "not:quadrant-bl")
        spread[temperature] = completions[:, :, hole].std(axis=1).mean()
    assert spread["0.5"] < 0.8 * spread["1"]
    assert spread["0"] < 1e-6  # the label given, every completion decodes the prior's mean
    run_cli("inpaint", label_run, "--mask", "top-half", "--input", images,
            "--temperature", "0.5", "--out", tmp_path / "p", expect=2)  # fmt: skip


def test_label_temperature_keeps_unlabelled_fills_to_the_likelier_classes(
    pixels_run, label_run, test_digits, tmp_path
):
    images, labels = test_digits
    hole = parse_mask("not:quadrant-bl").holes(1, size=(28, 28))[0].numpy()
    spread = {}
    for label_temperature in ("1", "0"):  # z at its mean: only the class drawn varies
        out = tmp_path / f"l{label_temperature}"
        run_cli("inpaint", pixels_run, "--mask", "not:quadrant-bl", "--input", images,
                "--samples", 8, "--temperature", 0, "--label-temperature", label_temperature,
                "--out", out)  # fmt: skip
        completions = np.load(f"{out}.npy")
        assert _observed_unchanged(np.load(images), completions, "not:quadrant-bl")
        spread[label_temperature] = completions[:, :, hole].std(axis=1).max(-1)  # [40]
    # one quadrant seen: the class drawn varies, and the fills with it, for some digits
    assert (spread["1"] > 0.05).sum() >= 3, spread["1"]
    assert spread["0"].max() < 1e-6  # always the most probable class
    for extra, message in (
        (("--label", "3"), "--label-temperature is for fills with no label"),
        (("--label-temperature", "1.5"), "1.5 is not in the range 0.0<=x<=1.0"),
    ):
        result = run_cli("inpaint", pixels_run, "--mask", "top-half", "--input", images,
                         "--label-temperature", "0.5", *extra, "--out", tmp_path / "x", expect=2)  # fmt: skip
        assert message in result.output
    result = run_cli("inpaint", label_run, "--mask", "top-half", "--input", images,
                     "--label-temperature", "0.5", "--out", tmp_path / "p", expect=2)  # fmt: skip
    assert "go with --method amortized" in result.output


def test_a_label_drawn_at_a_label_temperature_follows_the_sharpened_classifier(pixels_run):
    model = load_run(pixels_run).model
    test = load_split("mnist", "test")
    n = 4000
    images = model.flat_images(test.images[-1:]).expand(n, -1)
    holes = model.flat_holes(parse_mask("not:quadrant-bl").holes(n, size=(28, 28)))
    logits = model.classifier(model.observed_channels(images[:1], holes[:1]))[0].detach()
    for label_temperature in (1.0, 0.5, 1e-30, 0.0):
        pyro.set_rng_seed(0)
        with torch.no_grad(), poutine.block(), TemperedLatent(1.0, label_temperature):
            trace = poutine.trace(model.model).get_trace(images, None, holes)
        drawn = torch.bincount(trace.nodes["label"]["value"], minlength=10) / n
        if label_temperature > 1e-6:
            expected = (logits / label_temperature).softmax(-1)
        else:  # all on the most probable label
            expected = torch.nn.functional.one_hot(logits.argmax(), 10).float()
        assert (drawn - expected).abs().max() < 0.03, (label_temperature, drawn, expected)


def test_guidance_makes_the_fills_follow_the_label_given(pixels_run, test_digits, tmp_path):
    images, labels = test_digits
    train = load_split("mnist", "train")
    top = parse_mask("top-half").holes(1, size=(28, 28))[0].numpy()
    means = np.stack([train.images[train.labels == d, 0].numpy().mean(0)[top] for d in range(10)])
    asked = (np.load(labels) + 5) % 10  # a label each digit is not
    np.save(tmp_path / "asked.npy", asked)
    nearest = {}
    for guidance in ("0", "8"):
        out = tmp_path / f"g{guidance}"
        run_cli("inpaint", pixels_run, "--mask", "top-half", "--input", images, "--labels",
                tmp_path / "asked.npy", "--samples", 4, "--guidance", guidance, "--out", out)  # fmt: skip
        completions = np.load(f"{out}.npy")
        assert _observed_unchanged(np.load(images), completions, "top-half")
        fills = completions[:, :, top]  # [40, 4, 392]
        distances = ((fills[:, :, None] - means[None, None]) ** 2).sum(-1)  # [40, 4, 10]
        nearest[guidance] = (distances.argmin(-1) == asked[:, None]).mean()
    # nearest to the mean of the label asked: 16-22% of fills without guidance, 35-38%
    # with it, over seeds 0-5
    assert nearest["8"] > nearest["0"] + 0.1, nearest
    result = run_cli("inpaint", pixels_run, "--mask", "top-half", "--input", images,
                     "--guidance", "2", "--out", tmp_path / "n", expect=2)  # fmt: skip
    assert "--guidance needs the label" in result.output
    result = run_cli("inpaint", pixels_run, "--mask", "top-half", "--input", images,
                     "--label", "3", "--guidance", "nan", "--out", tmp_path / "x", expect=2)  # fmt: skip
    assert "the guidance must be a number of at least 0" in result.output


def test_input_formats_give_the_documented_shapes(pixels_run, tmp_path):
    test = load_split("mnist", "test")
    picture = (test.images[0, 0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "one.png")
    np.save(tmp_path / "one.npy", test.images[0, 0].numpy())
    np.save(tmp_path / "many255.npy", (test.images[:5, 0].numpy() * 255).round().astype(np.uint8))
    raw = idx_bytes((test.images[:6, 0].numpy() * 255).round().astype(np.uint8))
    (tmp_path / "six-idx3-ubyte").write_bytes(raw)
    (tmp_path / "six-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    cases = {
        "one.png": 1,
        "one.npy": 1,
        "many255.npy": 5,
        "six-idx3-ubyte": 6,
        "six-idx3-ubyte.gz": 6,
    }
    for name, n in cases.items():
        run_cli(
            "inpaint",
            pixels_run,
            "--mask",
            "left-half",
            "--input",
            tmp_path / name,
            "--out",
            tmp_path / f"{name}-out",
        )
        out = np.load(tmp_path / f"{name}-out.npy")
        assert out.shape == (n, 28, 28), name
        run_cli(
            "inpaint",
            pixels_run,
            "--mask",
            "left-half",
            "--input",
            tmp_path / name,
            "--samples",
            2,
            "--out",
            tmp_path / f"{name}-k",
        )
        assert np.load(tmp_path / f"{name}-k.npy").shape == (n, 2, 28, 28), name
        assert (tmp_path / f"{name}-k.png").stat().st_size > 0


def test_labels_from_file_and_single_label(pixels_run, test_digits, tmp_path):
    images, labels = test_digits
    run_cli(
        "inpaint",
        pixels_run,
        "--mask",
        "top-half",
        "--input",
        images,
        "--labels",
        labels,
        "--out",
        tmp_path / "a",
    )
    run_cli(
        "inpaint",
        pixels_run,
        "--mask",
        "top-half",
        "--input",
        images,
        "--label",
        "3",
        "--out",
        tmp_path / "b",
    )
    assert np.load(tmp_path / "a.npy").shape == np.load(tmp_path / "b.npy").shape == (40, 28, 28)
    np.save(tmp_path / "short.npy", np.zeros(3, np.int64))
    result = run_cli(
        "inpaint",
        pixels_run,
        "--mask",
        "top-half",
        "--input",
        images,
        "--labels",
        tmp_path / "short.npy",
        "--out",
        tmp_path / "c",
        expect=2,
    )
    assert "3 labels but 40 images to fill" in result.output


def test_short_trained_model_beats_the_mean_image_on_held_out_holes(pixels_run):
    model = load_run(pixels_run).model
    train, test = load_split("mnist", "train"), load_split("mnist", "test")
    x = test.images[-300:].reshape(300, -1)
    train_mean = train.images[:3000].reshape(3000, -1).mean(0)
    for mask in ("top-half", "center"):
        holes = parse_mask(mask).holes(300, size=(28, 28)).reshape(300, -1)
        ours = hole_nll(model, x, holes, None, particles=20)
        baseline = mean_image_nll(train_mean, x, holes)
        assert ours.mean().item() < 0.85 * baseline, mask


def test_evaluate_reports_the_pyro_example_protocol(pixels_run):
    result = run_cli(
        "evaluate", pixels_run, "--images", 30, "--particles", 5, "--mask", "center", "--json"
    )
    report = json.loads(result.output)
    assert {
        "center",
        "1 quadrant given (bottom-left)",
        "2 quadrants given (left half)",
        "3 quadrants given (bottom-right predicted)",
    } <= set(report["masks"])
    for row in report["masks"].values():
        assert row["nll_with_label"] < row["mean_image_baseline"]
        assert np.isfinite(row["nll_without_label"])
        assert 0 < row["nll_without_label_stderr"] < 0.2 * row["nll_without_label"]
    alone = run_cli("evaluate", pixels_run, "--images", 30, "--particles", 5, "--mask",
                    "center", "--no-protocols", "--json")  # fmt: skip
    assert list(json.loads(alone.output)["masks"]) == ["center"]


def test_evaluate_label_run_gives_elbo_and_nll(label_run):
    report = json.loads(
        run_cli("evaluate", label_run, "--images", 50, "--particles", 20, "--json").output
    )
    assert report["test_nll"]["mean"] <= report["test_neg_elbo"] + 1.0


def test_amortized_method_needs_a_pixels_run(label_run, test_digits, tmp_path):
    images, _ = test_digits
    result = run_cli(
        "inpaint",
        label_run,
        "--method",
        "amortized",
        "--mask",
        "top-half",
        "--input",
        images,
        "--out",
        tmp_path / "x",
        expect=2,
    )
    assert "--condition pixels" in result.output


def test_importance_sampled_nll_tightens_with_more_particles(pixels_run):
    model = load_run(pixels_run).model
    test = load_split("mnist", "test")
    x, y = test.images[-100:].reshape(100, -1), test.labels[-100:]
    holes = parse_mask("top-half").holes(100, size=(28, 28)).reshape(100, -1)
    torch.manual_seed(0)
    few = hole_nll(model, x, holes, y, particles=1).mean()
    many = hole_nll(model, x, holes, y, particles=50).mean()
    assert many < few
