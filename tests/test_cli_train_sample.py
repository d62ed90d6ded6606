"""`pyro-cvae train` and `pyro-cvae sample` end to end through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from .conftest import run_cli
from .test_reliability_input import fails


def test_train_writes_the_run_folder_contract(label_run):
    assert {"model.pt", "metrics.json", "loss.png", "samples.png", "latent.png"} <= {
        p.name for p in label_run.iterdir()
    }
    metrics = json.loads((label_run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    for entry in metrics["epochs"]:
        assert {"epoch", "train_loss", "test_loss", "seconds", "images_per_s"} <= set(entry)
        assert 50 < entry["test_loss"] < 600 and entry["seconds"] > 0 and entry["images_per_s"] > 0
    document = torch.load(label_run / "model.pt", weights_only=True)
    assert document["config"]["condition"] == "label" and document["config"]["z_dim"] == 2


def test_train_logs_one_line_per_epoch_when_not_a_terminal(tiny_data, tmp_path):
    result = run_cli(
        "train",
        "--data-dir",
        tiny_data,
        "--epochs",
        2,
        "--hidden",
        "32,16",
        "--out",
        tmp_path / "r",
        "--device",
        "cpu",
    )
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "images/s" in lines[0]


def test_every_option_reaches_the_saved_config(tiny_data, tmp_path):
    run_cli(
        "train",
        "--data-dir",
        tiny_data,
        "--epochs",
        1,
        "--batch-size",
        50,
        "--z-dim",
        3,
        "--hidden",
        "40,20,10",
        "--lr",
        "0.002",
        "--seed",
        7,
        "--likelihood",
        "beta",
        "--arch",
        "resnet",
        "--conv-width",
        4,
        "--prior",
        "learned",
        "--out",
        tmp_path / "r",
        "--device",
        "cpu",
    )
    config = torch.load(tmp_path / "r" / "model.pt", weights_only=True)["config"]
    assert (
        config["batch_size"],
        config["z_dim"],
        config["hidden"],
        config["lr"],
        config["seed"],
        config["likelihood"],
        config["arch"],
        config["conv_width"],
        config["prior"],
    ) == (50, 3, [40, 20, 10], 0.002, 7, "beta", "resnet", 4, "learned")


def test_conv_architecture_trains(tiny_data, tmp_path):
    run_cli(
        "train",
        "--data-dir",
        tiny_data,
        "--epochs",
        1,
        "--arch",
        "conv",
        "--hidden",
        "64",
        "--out",
        tmp_path / "r",
        "--device",
        "cpu",
    )
    run_cli("sample", tmp_path / "r", "--label", "3", "--n", 2, "--out", tmp_path / "s")
    assert np.load(tmp_path / "s.npy").shape == (2, 28, 28)


def test_sample_npy_layout_and_range(label_run, tmp_path):
    run_cli(
        "sample", label_run, "--label", "6,1,6", "--n", 5, "--seed", 3, "--out", tmp_path / "x.png"
    )
    images = np.load(tmp_path / "x.npy")
    assert images.shape == (15, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert (tmp_path / "x.png").stat().st_size > 0


def test_sample_groups_images_by_label(label_run, tmp_path):
    """Images of the same label come out together: rows of one label differ from another's."""
    run_cli("sample", label_run, "--label", "0,1", "--n", 20, "--out", tmp_path / "x")
    images = np.load(tmp_path / "x.npy")
    zeros, ones = images[:20].mean(0), images[20:].mean(0)
    assert np.abs(zeros - ones).mean() > 0.03


def test_sample_seed_makes_it_reproducible(label_run, tmp_path):
    run_cli("sample", label_run, "--label", "2", "--seed", 5, "--out", tmp_path / "a")
    run_cli("sample", label_run, "--label", "2", "--seed", 5, "--out", tmp_path / "b")
    run_cli("sample", label_run, "--label", "2", "--seed", 6, "--out", tmp_path / "c")
    a, b, c = (np.load(tmp_path / f"{k}.npy") for k in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_vae_run_samples_without_a_label(vae_run, tmp_path):
    run_cli("sample", vae_run, "--n", 6, "--out", tmp_path / "v")
    assert np.load(tmp_path / "v.npy").shape == (6, 28, 28)
    result = run_cli("sample", vae_run, "--label", "3", "--out", tmp_path / "w", expect=2)
    assert "--condition none" in result.output


def test_label_run_requires_a_label(label_run, tmp_path):
    result = run_cli("sample", label_run, "--out", tmp_path / "w", expect=2)
    assert "--label" in result.output


def test_help_answers_fast():
    for args in ([], ["train"], ["sample"], ["download"]):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pyro_cvae", *args, "--help"], check=True, capture_output=True
        )
        assert time.perf_counter() - started < 1.5  # interpreter start included; see benchmarks
    code = "import pyro_cvae.cli.main, sys; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_train_help_states_the_pixels_defaults_in_force():
    from pyro_cvae.config import PIXELS_DEFAULTS

    text = " ".join(run_cli("train", "--help").output.split())
    assert f"[default: 50; pixels: {PIXELS_DEFAULTS['epochs']};" in text
    assert f"[default: 2; pixels: {PIXELS_DEFAULTS['z_dim']};" in text
    assert f"pixels: {PIXELS_DEFAULTS['arch']}; colour: conv]" in text
    assert "pixels:" + ",".join(map(str, PIXELS_DEFAULTS["hidden"])) in text.replace(" ", "")
    assert "colour label: learned]" in text


def test_n_is_refused_beside_style_of(small_run, test_digits, tmp_path):
    images, _ = test_digits
    fails("sample", small_run, "--style-of", images, "--label", "1", "--n", 3,
          "--out", tmp_path / "s", code=2, match="--n goes without --style-of")  # fmt: skip


def test_temperature_draws_nearer_the_typical_image(label_run, tmp_path):
    spread = {}
    for temperature in ("1", "0.5", "0"):
        for seed in (1, 2):
            out = tmp_path / f"t{temperature}-{seed}"
            run_cli("sample", label_run, "--label", "4", "--n", 30, "--seed", seed,
                    "--temperature", temperature, "--out", out)  # fmt: skip
        images = np.load(tmp_path / f"t{temperature}-1.npy")
        spread[temperature] = images.std(0).mean()
    assert spread["0.5"] < 0.8 * spread["1"]
    assert spread["0"] < 1e-6  # every image is the prior's mean decoded, whatever the seed
    np.testing.assert_array_equal(np.load(tmp_path / "t0-1.npy"), np.load(tmp_path / "t0-2.npy"))
    run_cli("sample", label_run, "--label", "4", "--temperature", "1.5",
            "--out", tmp_path / "bad", expect=2)  # fmt: skip


def test_a_runs_sampling_temperature_is_what_its_samples_are_drawn_at(tiny_data, tmp_path):
    run_dir = tmp_path / "cold"
    run_cli("train", "--data-dir", tiny_data, "--epochs", 1, "--hidden", "32,16", "--z-dim", 4,
            "--sample-temperature", 0, "--device", "cpu", "--out", run_dir)  # fmt: skip
    config = json.loads((run_dir / "metrics.json").read_text())["config"]
    assert config["sample_temperature"] == 0.0
    drawn = {}
    for name, extra in (("own", ()), ("zero", ("--temperature", 0)), ("one", ("--temperature", 1))):
        for seed in (1, 2):
            run_cli("sample", run_dir, "--label", "3", "--n", 6, "--seed", seed, *extra,
                    "--out", tmp_path / f"{name}-{seed}")  # fmt: skip
            drawn[name, seed] = np.load(tmp_path / f"{name}-{seed}.npy")
    # the run's 0: every image the prior's mean decoded, as --temperature 0 draws it
    np.testing.assert_array_equal(drawn["own", 1], drawn["zero", 1])
    np.testing.assert_array_equal(drawn["own", 1], drawn["own", 2])
    assert not np.array_equal(drawn["one", 1], drawn["one", 2])  # --temperature 1 still wins
    result = run_cli("train", "--out", run_dir, "--resume", "--epochs", 2,
                     "--sample-temperature", 0.5, expect=2)  # fmt: skip
    assert "--sample-temperature 0.5 differs from the run's 0.0" in result.output
    result = run_cli("evaluate", run_dir, "--temperature", 0.5, expect=2)
    assert "--temperature goes with --samples" in result.output


@pytest.mark.parametrize(
    "options, match",
    [
        (
            ("--condition", "none", "--prior", "learned"),
            "learned prior p\\(z \\| y\\) is for label runs",
        ),
        (("--likelihood", "discretized-logistic-rgb"), "for colour images only"),
        (("--conv-width", 8), "is for --arch conv or resnet"),
    ],
)
def test_options_that_do_not_fit_together_are_a_usage_error(tiny_data, tmp_path, options, match):
    fails("train", "--data-dir", tiny_data, "--epochs", 1, *options, "--out", tmp_path / "r",
          code=2, match=match)  # fmt: skip
    assert not (tmp_path / "r").exists()
