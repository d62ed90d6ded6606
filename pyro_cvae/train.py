"""The SVI training loop: ELBO, optimizer, device, epochs, progress and checkpoint hooks.

The objective is the ELBO of the model/guide pair in `model.py`, estimated as Pyro's
`TraceMeanField_ELBO` does (the KL term of z is analytic, the likelihood term a one-sample
Monte Carlo estimate: the same objective as `Trace_ELBO`, with less variance), from Pyro
traces of the model and guide (`scoring.negative_elbo_sum`). It drives a fused `torch.optim.Adam` over the model's
parameters. The dataset lives on the device as one tensor, batched by an index
permutation; the loss is read back from the device only every `sync_every` steps.
Speed-ups and what each bought are measured in docs/benchmarks.md.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import torch

from .config import RunConfig
from .errors import TrainingError
from .model import CVAE, build_model
from .scoring import negative_elbo, negative_elbo_sum

# Adam moments below TINY_MOMENT are zeroed every FLUSH_EVERY steps on the CPU; a moment
# just above it takes ~170 steps to decay (x 0.9 a step) into the slow denormal range.
TINY_MOMENT = 1e-30
FLUSH_EVERY = 50


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" is CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over every parameter, fused into one kernel per step where torch allows it."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


@torch.no_grad()
def test_loss(model: CVAE, images, labels, *, seed: int = 0) -> float:
    """Negative ELBO in nats per image over a split (flat `images` `[N, D]` on the device).

    A model trained on holes (`model.training_holes`) is scored on holes drawn from the
    training mixture with a fixed seed, so that every epoch is scored on the same holes.
    """
    holes = model.training_holes(len(images), torch.Generator().manual_seed(seed), images.device)
    return negative_elbo(model, images, labels, holes)


@dataclass
class EpochMetrics:
    """One finished epoch: losses in nats per image, `seconds` of training steps."""

    epoch: int
    train_loss: float
    test_loss: float
    seconds: float
    images_per_s: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TrainState:
    """Where training stands; everything needed to resume it exactly.

    `epoch`: finished epochs. `step`: steps done in the epoch in progress (0 at an epoch
    boundary), with its index `permutation` and the running sums of its loss and seconds.
    """

    epoch: int = 0
    step: int = 0
    permutation: torch.Tensor | None = None
    loss_sum: float = 0.0
    seconds: float = 0.0
    history: list[EpochMetrics] = field(default_factory=list)


@dataclass
class Hooks:
    """Callbacks. `on_step(done, total)`; `on_epoch(metrics)` after each epoch;
    `should_stop()` polled after every step (e.g. set by Ctrl-C); `save(state)` is called
    after every epoch and when training stops early."""

    on_step: Callable[[int, int], None] | None = None
    on_epoch: Callable[[EpochMetrics], None] | None = None
    should_stop: Callable[[], bool] | None = None
    save: Callable[[TrainState], None] | None = None


class Trainer:
    """Owns the loop; the model stays a pure model/guide pair.

    train_images/test_images: float32 `[N, C, H, W]` in [0, 1] of `config.image_shape`;
    labels int64 `[N]`.
    `model`: any `CVAE` (networks of your own, say); by default `build_model(config)`.
    """

    def __init__(
        self,
        config: RunConfig,
        train_images: torch.Tensor,
        train_labels: torch.Tensor,
        test_images: torch.Tensor,
        test_labels: torch.Tensor,
        *,
        device: torch.device | str = "cpu",
        sync_every: int = 50,
        model: CVAE | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.sync_every = sync_every
        pyro.set_rng_seed(config.seed)
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.model.fit_label_prior(train_labels.to(self.device))
        self.optimizer = make_optimizer(self.model, config.lr)
        self.train_x = train_images.reshape(len(train_images), -1).to(self.device)
        self.train_y = train_labels.to(self.device)
        self.test_x = test_images.reshape(len(test_images), -1).to(self.device)
        self.test_y = test_labels.to(self.device)
        self.state = TrainState()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_x) / self.config.batch_size)

    def _step(self, index: torch.Tensor) -> torch.Tensor:
        x, y = self.train_x[index], self.train_y[index]
        hole = self.model.training_holes(len(index), device=self.device)
        with self.model.unregistered():  # the optimizer holds the parameters itself
            loss = negative_elbo_sum(self.model, x, y, hole)
        self.optimizer.zero_grad(set_to_none=True)
        (loss / len(index)).backward()
        self.optimizer.step()
        return loss.detach()

    def _check_finite(self, losses: list[torch.Tensor], first_step: int) -> float:
        """Sum of the pending batch losses; a clear error at the first non-finite one."""
        values = torch.stack(losses).tolist()
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise TrainingError(
                    f"the loss became {value} at epoch {self.state.epoch + 1}, step "
                    f"{first_step + offset + 1}; try a lower learning rate"
                )
        return sum(values)

    def _flush_tiny_moments(self) -> None:
        """Set Adam's moment estimates below `TINY_MOMENT` to zero (CPU only).

        Where a gradient is exactly zero for many steps (the first layer's weights from
        MNIST's almost always black border pixels, dead ReLU units), the first moment decays
        by 0.9 a step and turns denormal (below 1.2e-38) after ~800 steps; x86 arithmetic on
        denormals is many times slower, and the seed configuration slowed by a third from
        epoch 5 on (150,000 denormal moments). Flushed every `FLUSH_EVERY` steps they never
        get there. A moment below 1e-30 moves a parameter by less than lr * 1e-22 (Adam's
        eps is 1e-8), so the updates are unchanged. (`torch.set_flush_denormal` would
        reach only threads created after it is called, not torch's existing worker threads.)
        """
        for state in self.optimizer.state.values():
            for name in ("exp_avg", "exp_avg_sq"):
                moment = state.get(name)
                if moment is not None:
                    moment.masked_fill_(moment.abs() < TINY_MOMENT, 0.0)

    def run(self, hooks: Hooks | None = None) -> list[EpochMetrics]:
        """Train until `config.epochs` epochs are done or `hooks.should_stop()` says so.

        A non-finite loss, or model outputs that became NaN or infinite, end training with
        a `TrainingError` naming the epoch and step; the state is that of the last step
        before it.
        """
        try:
            with warnings.catch_warnings():  # a NaN is reported once, as a TrainingError
                warnings.filterwarnings("ignore", "Encountered NaN", UserWarning)
                return self._run(hooks or Hooks())
        except ValueError as error:
            if "found invalid values" not in str(error):
                raise
            raise TrainingError(
                f"the model's outputs became NaN or infinite at epoch {self.state.epoch + 1}, "
                f"by step {self.state.step + 1}; try a lower learning rate"
            ) from None

    def _run(self, hooks: Hooks) -> list[EpochMetrics]:
        state, batch = self.state, self.config.batch_size
        total_steps = self.steps_per_epoch
        while state.epoch < self.config.epochs:
            self.model.train()
            if state.step == 0:
                state.permutation = torch.randperm(len(self.train_x), device=self.device)
            pending: list[torch.Tensor] = []
            pending_from = state.step
            started = time.perf_counter()
            stopped = False
            while state.step < total_steps:
                index = state.permutation[state.step * batch : (state.step + 1) * batch]
                pending.append(self._step(index))
                state.step += 1
                if self.device.type == "cpu" and state.step % FLUSH_EVERY == 0:
                    self._flush_tiny_moments()
                if len(pending) == self.sync_every or state.step == total_steps:
                    state.loss_sum += self._check_finite(pending, pending_from)
                    pending, pending_from = [], state.step
                if hooks.on_step:
                    hooks.on_step(state.step, total_steps)
                if hooks.should_stop and hooks.should_stop():
                    stopped = state.step < total_steps
                    break
            if pending:
                state.loss_sum += self._check_finite(pending, pending_from)
            state.seconds += time.perf_counter() - started
            if stopped:
                if hooks.save:
                    hooks.save(state)
                return state.history
            self.model.eval()
            metrics = EpochMetrics(
                epoch=state.epoch + 1,
                train_loss=state.loss_sum / len(self.train_x),
                test_loss=test_loss(self.model, self.test_x, self.test_y),
                seconds=state.seconds,
                images_per_s=len(self.train_x) / state.seconds,
            )
            state.history.append(metrics)
            state.epoch += 1
            state.step, state.permutation, state.loss_sum, state.seconds = 0, None, 0.0, 0.0
            if hooks.save:
                hooks.save(state)
            if hooks.on_epoch:
                hooks.on_epoch(metrics)
            if hooks.should_stop and hooks.should_stop():
                break
        return state.history
