"""Conditioning label/none runs on observed pixels: classify, posterior inpainting, styles."""

from __future__ import annotations

import json

import numpy as np

from .conftest import run_cli


def test_classify_writes_labels_and_probabilities(label_run, test_digits, tmp_path):
    images, labels = test_digits
    run_cli("classify", label_run, "--input", images, "--particles", 20, "--out", tmp_path / "c")
    predicted = np.load(tmp_path / "c.npy")
    report = json.loads((tmp_path / "c.json").read_text())
    assert predicted.dtype == np.int64 and predicted.shape == (40,)
    probabilities = np.array(report["probabilities"])
    assert probabilities.shape == (40, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities.argmax(1), predicted)
    assert report["labels"] == predicted.tolist()


def test_bayes_rule_classifies_far_above_chance(label_run, test_digits, tmp_path):
    """A label CVAE trained 3 epochs on 3,000 images names held-out digits by Bayes' rule."""
    images, labels = test_digits
    truth = np.load(labels)
    run_cli("classify", label_run, "--input", images, "--particles", 20, "--out", tmp_path / "w")
    run_cli(
        "classify",
        label_run,
        "--input",
        images,
        "--mask",
        "top-half",
        "--particles",
        20,
        "--rounds",
        3,
        "--out",
        tmp_path / "t",
    )
    assert json.loads((tmp_path / "t.json").read_text())["rounds"] == 3
    whole = (np.load(tmp_path / "w.npy") == truth).mean()
    half = (np.load(tmp_path / "t.npy") == truth).mean()
    assert whole > 0.6 and half > 0.3  # chance is 0.1


def test_posterior_inpainting_keeps_observed_pixels(label_run, test_digits, tmp_path):
    images, _ = test_digits
    run_cli(
        "inpaint",
        label_run,
        "--mask",
        "top-half",
        "--input",
        images,
        "--samples",
        3,
        "--particles",
        30,
        "--rounds",
        2,
        "--out",
        tmp_path / "p",
    )
    completions = np.load(tmp_path / "p.npy")
    inputs = np.load(images)
    assert completions.shape == (40, 3, 28, 28) and completions.dtype == np.float32
    np.testing.assert_array_equal(completions[:, :, 14:], np.repeat(inputs[:, None, 14:], 3, 1))
    assert 0 <= completions.min() and completions.max() <= 1


def test_posterior_inpainting_of_a_vae_and_with_labels(vae_run, label_run, test_digits, tmp_path):
    images, labels = test_digits
    run_cli(
        "inpaint",
        vae_run,
        "--mask",
        "center",
        "--input",
        images,
        "--particles",
        10,
        "--rounds",
        3,
        "--out",
        tmp_path / "v",
    )
    assert np.load(tmp_path / "v.npy").shape == (40, 28, 28)
    run_cli(
        "inpaint",
        label_run,
        "--mask",
        "center",
        "--input",
        images,
        "--labels",
        labels,
        "--particles",
        10,
        "--out",
        tmp_path / "l",
    )
    assert np.load(tmp_path / "l.npy").shape == (40, 28, 28)


def test_style_of_renders_each_style_as_every_label(label_run, test_digits, tmp_path):
    images, _ = test_digits
    styles = np.load(images)[:5]
    np.save(tmp_path / "styles.npy", styles)
    run_cli(
        "sample",
        label_run,
        "--style-of",
        tmp_path / "styles.npy",
        "--label",
        "0,7,3",
        "--out",
        tmp_path / "s",
    )
    rendered = np.load(tmp_path / "s.npy")
    assert rendered.shape == (15, 28, 28)
    assert not np.allclose(rendered[0], rendered[1])  # two styles of the same digit differ
    run_cli(
        "sample",
        label_run,
        "--style-of",
        tmp_path / "styles.npy",
        "--style-label",
        4,
        "--label",
        "1",
        "--out",
        tmp_path / "k",
    )
    assert np.load(tmp_path / "k.npy").shape == (5, 28, 28)
