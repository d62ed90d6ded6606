"""The options of the quality configuration (`--preset best`): random shifts, turns and
scalings, training on holes with a guide that reads the hole mask, the importance-weighted
objective, the preset."""

from __future__ import annotations

import json
import math

import numpy as np
import pyro
import pytest
import torch

from pyro_cvae.augment import random_shifts, random_turns
from pyro_cvae.checkpoint import load_run
from pyro_cvae.config import RunConfig, default_config
from pyro_cvae.data import load_split
from pyro_cvae.evaluate import mean_image_nll
from pyro_cvae.masks import parse_mask
from pyro_cvae.model import build_model
from pyro_cvae.scoring import bounds, negative_elbo_parts, negative_elbo_sum, weigh
from pyro_cvae.train import Hooks, Trainer

from .conftest import run_cli


def test_random_shifts_move_each_image_by_its_own_whole_pixels():
    torch.manual_seed(0)
    images = torch.zeros(2000, 1, 9, 9)
    images[:, 0, 4, 4] = 1.0  # one bright pixel in the middle
    moved = random_shifts(images, 2)
    assert moved.shape == images.shape and moved.dtype == images.dtype
    assert torch.equal(moved.sum((1, 2, 3)), images.sum((1, 2, 3)))  # nothing lost or added
    where = moved[:, 0].flatten(1).argmax(1)
    offsets = torch.stack([where // 9 - 4, where % 9 - 4], 1)
    assert set(map(tuple, offsets.tolist())) == {
        (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
    }
    assert random_shifts(images, 0) is images


@pytest.mark.parametrize("axis", [-1, -2])
def test_random_shifts_fill_the_border_with_the_edge(axis):
    torch.manual_seed(1)
    ramp = torch.arange(8.0).repeat(8, 1)  # columns 0..7
    ramp = (ramp if axis == -1 else ramp.T)[None, None].expand(500, 3, 8, 8).contiguous()
    moved = random_shifts(ramp, 3)
    steps = moved.diff(dim=axis)  # a shifted ramp is a ramp clamped at its ends
    assert ((steps == 0) | (steps == 1)).all()
    assert (moved.diff(dim=-1 if axis == -2 else -2) == 0).all()  # unchanged across
    assert moved.amin((1, 2, 3)).max() == 3.0 and moved.amax((1, 2, 3)).min() == 4.0
    corner = moved[:, 0, 0, 0]  # the ramp's start, or what a shift brought there
    assert set(corner.tolist()) == {0.0, 1.0, 2.0, 3.0}


def _principal_angle(images: torch.Tensor) -> torch.Tensor:
    """The angle in degrees (counter-clockwise on screen, rows down) of each image's
    principal axis of ink `[N]`, from its second moments."""
    rows, cols = torch.meshgrid(torch.arange(images.shape[-2]).float(),
                                torch.arange(images.shape[-1]).float(), indexing="ij")  # fmt: skip
    ink = images[:, 0] / images[:, 0].sum((1, 2), keepdim=True)
    mean_r, mean_c = (ink * rows).sum((1, 2)), (ink * cols).sum((1, 2))
    dr, dc = rows - mean_r[:, None, None], cols - mean_c[:, None, None]
    crr, ccc, crc = (
        (ink * dr * dr).sum((1, 2)),
        (ink * dc * dc).sum((1, 2)),
        (ink * dr * dc).sum((1, 2)),
    )
    return torch.rad2deg(0.5 * torch.atan2(-2 * crc, ccc - crr))


def _spread(images: torch.Tensor) -> torch.Tensor:
    """The standard deviation, in pixels, of each image's ink across its columns `[N]`."""
    cols = torch.arange(images.shape[-1]).float()
    ink = images[:, 0].sum(1) / images[:, 0].sum((1, 2))[:, None]  # [N, W]
    mean = (ink * cols).sum(1, keepdim=True)
    return ((ink * (cols - mean) ** 2).sum(1)).sqrt()


def test_random_turns_turn_each_image_its_own_way_within_the_bound_on_any_shape():
    torch.manual_seed(0)
    for height, width in ((21, 21), (21, 41)):
        bar = torch.zeros(400, 1, height, width)
        bar[:, :, height // 2, width // 2 - 6 : width // 2 + 7] = 1.0  # a level bar, 13 long
        turned = random_turns(bar, 20.0, 0.0)
        assert turned.shape == bar.shape and turned.dtype == bar.dtype
        angles = _principal_angle(turned)
        # by pixels, not by stretched units: a wide image turns its bar no further
        assert angles.abs().max() < 21.5 and angles.min() < -15 and angles.max() > 15
        assert len(set(angles.round(decimals=3).tolist())) > 300  # each its own angle
    spread = _spread(random_turns(bar, 0.0, 0.2)) / _spread(bar[:1])  # the bar's length
    assert 0.78 < spread.min() < 0.83 and 1.17 < spread.max() < 1.22
    assert random_turns(bar, 0.0, 0.0) is bar
    colour = bar * torch.tensor([1.0, 0.5, 0.25])[:, None, None]  # [400, 3, 21, 41]
    turned = random_turns(colour, 30.0, 0.2)  # one warp for all three channels
    assert torch.allclose(turned[:, 1:], turned[:, :1] * torch.tensor([0.5, 0.25])[:, None, None])


@pytest.fixture(scope="module")
def digits():
    split = load_split("mnist", "test")
    return split.images[:200].reshape(200, -1), split.labels[:200]


def test_a_model_that_trains_on_holes_gives_that_share_a_hole_and_its_guide_reads_the_mask(
    digits,
):
    x, y = digits
    model = build_model(RunConfig(z_dim=4, hidden=(32, 16), train_holes=0.3))
    holes = model.training_holes(5000, torch.Generator().manual_seed(0))
    assert holes.shape == (5000, 784)
    assert 0.27 < holes.any(1).float().mean() < 0.33
    assert model.test_holes(10, torch.Generator()) is None  # scored on whole images
    hole = torch.zeros(200, 784, dtype=torch.bool)
    hole[:, :392] = True
    zeroed = x.masked_fill(hole, 0.0)
    # the same pixels with and without the mask that says they are missing: different q
    assert not torch.allclose(model.encode(zeroed, y, hole)[0], model.encode(zeroed, y)[0])
    plain = build_model(RunConfig(z_dim=4, hidden=(32, 16)))
    assert plain.training_holes(10) is None


def test_the_importance_weighted_bound_is_tighter_than_the_elbo(digits):
    x, y = digits
    pyro.set_rng_seed(0)
    model = build_model(RunConfig(z_dim=4, hidden=(64, 32)))
    with torch.no_grad():
        elbo = torch.stack([negative_elbo_sum(model, x, y, None) for _ in range(20)])
        one = torch.stack(
            [-weigh(model.model, model.guide, (x, y, None), 1).log_weights.sum() for _ in range(20)]
        )
        twenty = torch.stack([-bounds(model, 20, x, y, None).sum() for _ in range(20)])
    # one importance weight is the ELBO in expectation (without the analytic KL: more noise)
    noise = (elbo.var() / 20 + one.var() / 20).sqrt()
    assert (elbo.mean() - one.mean()).abs() < 4 * noise + 1e-3 * elbo.mean()
    assert twenty.mean() < elbo.mean() - 4 * (elbo.var() / 20 + twenty.var() / 20).sqrt()
    loss = -bounds(model, 3, x, y, None).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_learning_rate_schedule_sets_each_epochs_rate(digits, schedule):
    x, y = digits
    config = RunConfig(z_dim=2, hidden=(16,), epochs=4, lr=2e-3, lr_schedule=schedule)
    images = x.view(-1, 1, 28, 28)
    trainer = Trainer(config, images[:100], y[:100], images[100:], y[100:])
    rates = []
    trainer.run(Hooks(on_epoch=lambda m: rates.append(trainer.optimizer.param_groups[0]["lr"])))
    if schedule == "constant":
        assert rates == [2e-3] * 4
    else:  # the first epoch at the full rate, each later one lower, the last near 0
        assert rates == pytest.approx(
            [2e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
        )
        assert rates[0] == 2e-3 and rates[-1] < 0.15 * 2e-3


def test_preset_best_sets_the_defaults_and_explicit_options_win(tiny_data, tmp_path):
    config = default_config("label", preset="best")
    assert (config.arch, config.z_dim, config.prior, config.preset) == (
        "conv",
        16,
        "learned",
        "best",
    )
    assert (config.train_holes, config.shift, config.epochs) == (0.5, 1, 100)
    assert (config.kl_warmup, config.sample_temperature) == (30, 0.8)
    complements = tuple(
        f"not:{name}"
        for name in ("quadrant-tl", "quadrant-tr", "quadrant-bl", "quadrant-br", "center")
    )
    assert default_config("pixels", preset="best") == default_config("pixels").replace(
        preset="best", train_masks=complements, epochs=60
    )
    run_dir = tmp_path / "best"
    run_cli(
        "train", "--preset", "best", "--data-dir", tiny_data, "--epochs", 1, "--z-dim", 3,
        "--conv-width", 8, "--device", "cpu", "--out", run_dir,
    )  # fmt: skip
    saved = json.loads((run_dir / "metrics.json").read_text())["config"]
    assert saved["preset"] == "best" and saved["z_dim"] == 3 and saved["epochs"] == 1
    assert (saved["train_holes"], saved["shift"], saved["arch"]) == (0.5, 1, "conv")
    assert (saved["kl_warmup"], saved["sample_temperature"]) == (30, 0.8)
    result = run_cli("train", "--out", run_dir, "--resume", "--epochs", 2, "--shift", 2, expect=2)
    assert "--shift 2 differs from the run's 1" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "best", "--condition", "none"], "is for --condition label or pixels runs"),
        (["--condition", "pixels", "--train-holes", "0.5"], "is for label and none runs"),
        (["--shift", "14"], "shift must be 0 to less than half the image's side"),
        (["--train-holes", "1.5"], "1.5 is not in the range 0<=x<=1"),
        (["--condition", "pixels", "--class-weight", "5"], "is for label runs with two classes"),
        (["--class-after", "3"], "class_after (--class-after) needs a class_weight above 0"),
        (["--class-weight", "-1"], "-1.0 is not in the range x>=0"),
        (["--train-mask", "top-half"], "shape the holes of a pixels run, or of a label or none"),
        (["--condition", "pixels", "--train-mask", "random-pixels:0.3"], "a named region, a box"),
        (["--lr-schedule", "linear"], "'linear' is not one of 'constant', 'cosine'"),
        (["--baseline-guess"], "baseline_guess (--baseline-guess) is for pixels runs"),
        (["--label-every-level"], "is for label runs with --arch conv or resnet"),
        (["--condition", "pixels", "--label-every-level"], "is for label runs with --arch conv"),
        (["--kl-warmup", "2", "--train-particles", "3"], "has no such part"),
        (["--kl-warmup", "3", "--class-weight", "5", "--class-after", "2"], "must end before"),
        (["--kl-warmup", "-1"], "-1 is not in the range x>=0"),
        (["--preset", "best", "--train-particles", "3"], "(--preset best sets it; --kl-warmup 0"),
        (["--sample-temperature", "1.5"], "1.5 is not in the range 0.0<=x<=1.0"),
        (["--rotation", "200"], "200.0 is not in the range 0<=x<=180"),
        (["--scaling", "1"], "1.0 is not in the range 0<=x<1"),
    ],
)
def test_options_that_do_not_fit_are_one_line_errors(tiny_data, tmp_path, args, message):
    result = run_cli("train", "--data-dir", tiny_data, "--out", tmp_path / "r", *args, expect=2)
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r" / "model.pt").exists()


def test_training_on_holes_names_half_digits_better(tiny_data, tmp_path):
    """The same brief runs (z 16, 20 epochs on 3,000 digits, seeds 0 and 1) with and
    without --train-holes: the guides that have seen holes name the last 300 test digits
    (never in the tiny data) with their top half removed more often, at 10 particles and
    one round. Seeds 0-3 gave gains of 13, 8, 12 and 3 points; the mean of two is asked
    for 4."""
    test = load_split("mnist", "test")
    np.save(tmp_path / "digits.npy", test.images[-300:, 0].numpy())
    gains = []
    for seed in (0, 1):
        accuracy = {}
        for share in ("0", "0.5"):
            run_dir = tmp_path / f"{seed}-{share}"
            run_cli(
                "train", "--data-dir", tiny_data, "--epochs", 20, "--z-dim", 16, "--seed", seed,
                "--train-holes", share, "--device", "cpu", "--out", run_dir,
            )  # fmt: skip
            run_cli(
                "classify", run_dir, "--input", tmp_path / "digits.npy", "--mask", "top-half",
                "--particles", 10, "--rounds", 1, "--out", run_dir / "named",
            )  # fmt: skip
            named = np.load(run_dir / "named.npy")
            accuracy[share] = (named == test.labels[-300:].numpy()).mean()
        gains.append(accuracy["0.5"] - accuracy["0"])
    assert np.mean(gains) > 0.04, gains


def test_a_run_with_every_new_option_resumes_exactly(tiny_data, tmp_path):
    options = ["--data-dir", tiny_data, "--hidden", "32,16", "--z-dim", 4, "--train-holes",
               "0.5", "--shift", 2, "--rotation", 10, "--scaling", 0.1, "--train-particles", 3,
               "--class-weight", 5, "--class-after", 1, "--class-lr-scale", 0.5, "--train-mask",
               "not:quadrant-bl", "--train-mask", "box:0,0,9,9", "--lr-schedule", "cosine",
               "--device", "cpu"]  # fmt: skip
    run_cli("train", *options, "--epochs", 2, "--out", tmp_path / "straight")
    run_cli("train", *options, "--epochs", 1, "--out", tmp_path / "halted")
    run_cli("train", *options, "--epochs", 2, "--out", tmp_path / "halted", "--resume")
    losses = [
        [(e["train_loss"], e["test_loss"], e.get("class_loss")) for e in json.loads((run / "metrics.json").read_text())["epochs"]]
        for run in (tmp_path / "straight", tmp_path / "halted")
    ]  # fmt: skip
    assert losses[0] == losses[1]
    assert losses[0][0][2] is None and losses[0][1][2] > 0  # the label term in the last epoch
    saved = json.loads((tmp_path / "halted" / "metrics.json").read_text())["config"]
    assert saved["train_masks"] == ["not:quadrant-bl", "box:0,0,9,9"]
    assert saved["lr_schedule"] == "cosine"
    assert (saved["rotation"], saved["scaling"]) == (10.0, 0.1)
    result = run_cli("train", "--out", tmp_path / "halted", "--resume", "--epochs", 3,
                     "--train-mask", "not:center", expect=2)  # fmt: skip
    assert "--train-mask not:center differs from the run's not:quadrant-bl box:0,0,9,9" in (
        result.output
    )


def test_a_training_mask_outside_the_image_is_refused_before_training_starts(tiny_data, tmp_path):
    result = run_cli("train", "--condition", "pixels", "--data-dir", tiny_data, "--train-mask",
                     "box:20,20,20,20", "--out", tmp_path / "r", expect=1)  # fmt: skip
    assert "the box must lie inside 28x28" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any((tmp_path / "r").iterdir())  # a failed start leaves the folder empty


def test_the_label_cross_entropy_names_digits_better(tiny_data, tmp_path):
    """The same brief runs (the seed settings, 12 epochs on 3,000 digits, seeds 0 and 1)
    with and without --class-weight 20 after the first 8 epochs: the runs trained on the label
    cross-entropy name the last 300 test digits (never in the tiny data) more often by
    Bayes' rule, at 10 particles. Seeds 0-3 gave gains of 5, 8, 3 and 5 points; the
    mean of two is asked for 3."""
    test = load_split("mnist", "test")
    np.save(tmp_path / "digits.npy", test.images[-300:, 0].numpy())
    gains = []
    for seed in (0, 1):
        accuracy = {}
        for term in ([], ["--class-weight", 20, "--class-after", 8]):
            run_dir = tmp_path / f"{seed}-{len(term)}"
            run_cli(
                "train", "--data-dir", tiny_data, "--epochs", 12, "--seed", seed, *term,
                "--device", "cpu", "--out", run_dir,
            )  # fmt: skip
            run_cli(
                "classify", run_dir, "--input", tmp_path / "digits.npy", "--particles", 10,
                "--out", run_dir / "named",
            )  # fmt: skip
            named = np.load(run_dir / "named.npy")
            accuracy[len(term)] = (named == test.labels[-300:].numpy()).mean()
        gains.append(accuracy[4] - accuracy[0])
    assert np.mean(gains) > 0.03, gains


def test_a_label_term_that_begins_after_the_last_epoch_is_said_in_one_line(tiny_data, tmp_path):
    run_dir = tmp_path / "r"
    result = run_cli(
        "train", "--data-dir", tiny_data, "--hidden", "32,16", "--epochs", 1, "--class-weight",
        5, "--class-after", 2, "--device", "cpu", "--out", run_dir,
    )  # fmt: skip
    assert "begins after epoch 2: none of these 1 epochs adds it" in result.output
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert "class_loss" not in epochs[0]
    run_cli("train", "--out", run_dir, "--resume", "--epochs", 3)
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    assert ["class_loss" in e for e in epochs] == [False, False, True]


def test_the_baseline_guess_learns_the_hole_and_fills_it_for_the_other_networks(
    tiny_data, test_digits, tmp_path
):
    """--baseline-guess (Sohn et al.'s hybrid): the baseline network trains on its own
    loss, recorded per epoch; after 4 epochs it predicts the holes of the 40 test digits
    (never in the tiny data) better than the training images' mean does; the prior,
    generation and classifier networks see its prediction in the hole and the observed
    pixels elsewhere; the run resumes exactly, keeps the setting, and fills holes."""
    options = ["--condition", "pixels", "--data-dir", tiny_data, "--arch", "mlp", "--hidden",
               "256,128", "--z-dim", 4, "--baseline-guess", "--device", "cpu"]  # fmt: skip
    run_cli("train", *options, "--epochs", 4, "--out", tmp_path / "straight")
    run_cli("train", *options, "--epochs", 2, "--out", tmp_path / "halted")
    run_cli("train", *options, "--epochs", 4, "--out", tmp_path / "halted", "--resume")
    epochs = [
        json.loads((run / "metrics.json").read_text())["epochs"]
        for run in (tmp_path / "straight", tmp_path / "halted")
    ]
    assert [
        [(e["train_loss"], e["test_loss"], e["auxiliary_loss"]) for e in run] for run in epochs
    ] == [[(e["train_loss"], e["test_loss"], e["auxiliary_loss"]) for e in epochs[0]]] * 2
    assert epochs[0][-1]["auxiliary_loss"] < epochs[0][0]["auxiliary_loss"]
    result = run_cli("train", "--out", tmp_path / "halted", "--resume", "--epochs", 5,
                     "--no-baseline-guess", expect=2)  # fmt: skip
    assert "--no-baseline-guess differs from the run's --baseline-guess" in result.output

    run = load_run(tmp_path / "straight")
    model, train = run.model, load_split("mnist", "train", tiny_data)
    images = torch.from_numpy(np.load(test_digits[0])).reshape(40, -1)
    hole = parse_mask("top-half").holes(40, size=(28, 28)).reshape(40, -1)
    with torch.no_grad():
        baseline = model.auxiliary_loss(images, None, hole).item() / 40
        planes = model.observed_channels(images, hole)
    mean_image = mean_image_nll(train.images.reshape(len(train.images), -1).mean(0), images, hole)
    assert baseline < mean_image - 2, (baseline, mean_image)  # 92.1 against 97.0
    seen, mask = planes[:, :784], planes[:, 784:]
    assert torch.equal(mask, hole.float())
    assert torch.equal(seen[~hole], images[~hole])
    guess = seen[hole]
    assert (0 < guess).all() and (guess < 1).all() and guess.std() > 0.05

    run_cli("inpaint", tmp_path / "straight", "--mask", "top-half", "--input", test_digits[0],
            "--samples", 2, "--out", tmp_path / "filled")  # fmt: skip
    filled = np.load(tmp_path / "filled.npy")
    inputs = np.load(test_digits[0])
    assert filled.shape == (40, 2, 28, 28)
    assert np.array_equal(filled[:, :, 14:], np.broadcast_to(inputs[:, None, 14:], (40, 2, 14, 28)))


def test_the_baseline_and_the_cvae_train_apart(digits):
    """The baseline's loss reaches only the baseline (its own copy of a learned
    likelihood's scale included); the ELBO reaches everything else and not the baseline."""
    x, y = digits
    config = RunConfig(condition="pixels", hidden=(32, 16), z_dim=4, likelihood="gaussian",
                       baseline_guess=True)  # fmt: skip
    model = build_model(config)
    hole = model.training_holes(len(x), torch.Generator().manual_seed(0))
    own = {name for name, _ in model.named_parameters() if name.startswith("baseline_")}
    assert "baseline_likelihood.log_scale" in own

    def reached(loss) -> set[str]:
        model.zero_grad(set_to_none=True)
        with model.unregistered():
            loss(x, y, hole).backward()
        return {name for name, p in model.named_parameters() if p.grad is not None}

    assert reached(model.auxiliary_loss) == own
    by_elbo = reached(lambda *args: negative_elbo_sum(model, *args))
    assert "likelihood.log_scale" in by_elbo and not by_elbo & own


def test_the_label_at_every_decoder_level(tiny_data, tmp_path):
    """--label-every-level: each transposed convolution of the decoder reads the label's
    one-hot planes beside its channels, so the label changes every level's input; a run
    trains and records it through the CLI."""
    config = RunConfig(arch="conv", z_dim=4, conv_width=8, label_every_level=True)
    model = build_model(config)
    plain = build_model(config.replace(label_every_level=False))
    ups = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    plain_ups = [m for m in plain.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.in_channels for m in ups] == [m.in_channels + 10 for m in plain_ups]
    seen = []
    ups[-1].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    z = torch.randn(2, 5, 4)  # two particles of five images share their labels
    params = model.decode(z, torch.arange(5))
    assert params.shape == (2, 5, 784)
    planes = seen[0][:, -10:]  # the last level's input: the label's planes at 14x14
    assert planes.shape == (10, 10, 14, 14)
    assert torch.equal(planes[:, :, 3, 7], torch.eye(10)[torch.arange(5).repeat(2)])
    assert not torch.allclose(params, model.decode(z, torch.arange(5).flip(0)))
    run_dir = tmp_path / "r"
    run_cli("train", "--data-dir", tiny_data, "--arch", "conv", "--conv-width", 8, "--z-dim", 4,
            "--label-every-level", "--epochs", 1, "--device", "cpu", "--out", run_dir)  # fmt: skip
    assert json.loads((run_dir / "metrics.json").read_text())["config"]["label_every_level"]


def test_kl_warmup_weighs_the_kl_part_by_step(digits):
    """The weight rises linearly by step to 1 at the end of epoch E and stays there; the
    two parts add up to the -ELBO, the KL part a KL (>= 0)."""
    x, y = digits
    config = RunConfig(z_dim=2, hidden=(16,), epochs=3, batch_size=50, kl_warmup=2)
    images = x.view(-1, 1, 28, 28)
    trainer = Trainer(config, images[:100], y[:100], images[100:], y[100:])
    scales = []
    for epoch in range(3):
        for step in range(2):
            trainer.state.epoch, trainer.state.step = epoch, step
            scales.append(trainer.kl_scale)
    assert scales == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    model = trainer.model
    pyro.set_rng_seed(3)
    parts = negative_elbo_parts(model, x, y, None)
    pyro.set_rng_seed(3)
    torch.testing.assert_close(parts.sum(), negative_elbo_sum(model, x, y, None))
    assert parts[1] >= 0


def test_a_long_kl_warmup_leaves_the_guide_far_from_the_prior(digits):
    """With the KL part weighed near 0 throughout (a warm-up far longer than the run), the
    guide is free to move away from the prior: after the same 6 epochs its KL on unseen
    digits is several times that of a run without warm-up (3.1-3.2 times at seeds 0-2)."""
    x, y = digits
    images = x.view(-1, 1, 28, 28)
    kl = {}
    for warmup in (0, 1000):
        config = RunConfig(z_dim=4, hidden=(64,), epochs=6, batch_size=20, kl_warmup=warmup)
        trainer = Trainer(config, images[:150], y[:150], images[150:], y[150:])
        trainer.run()
        with torch.no_grad():
            kl[warmup] = negative_elbo_parts(trainer.model, x[150:], y[150:], None)[1].item()
    assert kl[1000] > 2 * kl[0], kl


def test_a_run_with_kl_warmup_resumes_exactly_and_keeps_it(tiny_data, tmp_path):
    options = ["--data-dir", tiny_data, "--hidden", "32,16", "--z-dim", 4, "--kl-warmup", 2,
               "--device", "cpu"]  # fmt: skip
    run_cli("train", *options, "--epochs", 3, "--out", tmp_path / "straight")
    run_cli("train", *options, "--epochs", 1, "--out", tmp_path / "halted")
    run_cli("train", *options, "--epochs", 3, "--out", tmp_path / "halted", "--resume")
    losses = [
        [(e["train_loss"], e["test_loss"]) for e in json.loads((run / "metrics.json").read_text())["epochs"]]
        for run in (tmp_path / "straight", tmp_path / "halted")
    ]  # fmt: skip
    assert losses[0] == losses[1]
    assert (
        json.loads((tmp_path / "halted" / "metrics.json").read_text())["config"]["kl_warmup"] == 2
    )
    result = run_cli("train", "--out", tmp_path / "halted", "--resume", "--epochs", 4,
                     "--kl-warmup", 5, expect=2)  # fmt: skip
    assert "--kl-warmup 5 differs from the run's 2" in result.output
