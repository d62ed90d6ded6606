"""The SVI training loop: ELBO, optimizer, device, epochs, progress and checkpoint hooks.

The objective is the ELBO of the model/guide pair in `model.py`, estimated as Pyro's
`TraceMeanField_ELBO` does (the KL term of z is analytic, the likelihood term a one-sample
Monte Carlo estimate: the same objective as `Trace_ELBO`, with less variance), from Pyro
traces of the model and guide (`scoring.negative_elbo_parts`: its two parts); with
`config.train_particles` K > 1, the importance-weighted bound of K particles instead
(`scoring.bounds`). With `config.class_weight` (label runs, in the epochs that
`config.class_term_from` names), every image is scored under every label
(`scoring.label_bounds`) and the objective adds class_weight x the cross-entropy of
the label posterior those scores give by Bayes' rule. With `config.kl_warmup`, the KL
part of the -ELBO is weighed by `Trainer.kl_scale` (KL warm-up). Each batch is prepared by
`Trainer.batch`: its images moved by random whole pixels (`config.shift`,
`augment.random_shifts`), then turned and scaled at random (`config.rotation`,
`config.scaling`, `augment.random_turns`), and given fresh holes where the model trains
on holes. It drives Adam over the model's parameters (`adam.FusedAdam`: torch's fused
kernel, without the 0.7 s that creating a `torch.optim` optimizer costs). The dataset
lives on the device as one tensor, batched by an index permutation; the loss is read back
from the device only every `sync_every` steps.
Speed-ups and what each bought are measured in docs/benchmarks.md.

Under torchrun (a `distributed.ProcessGroup`), every process takes its share of each
batch of the same permutation, the loss is wrapped in `DistributedDataParallel` (the
model and guide are unchanged), and losses, timings and the decision to stop are reduced
over the processes, so that every figure is the whole group's (docs/distributed.md).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import torch

from .adam import MOMENTS, FusedAdam
from .augment import random_shifts, random_turns
from .config import RunConfig
from .distributed import ProcessGroup, Share
from .errors import LossNotFinite, TrainingError, UsageError
from .model import CVAE, build_model
from .scoring import bounds, label_bounds, negative_elbo, negative_elbo_parts

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


def make_optimizer(model: torch.nn.Module, lr: float) -> FusedAdam:
    """Adam over every parameter, fused into one kernel per step (`adam.FusedAdam`)."""
    return FusedAdam(model.parameters(), lr=lr)


@torch.no_grad()
def test_loss(
    model: CVAE, images, labels, *, seed: int = 0, group: ProcessGroup | None = None
) -> float:
    """Negative ELBO in nats per image over a split (flat `images` `[N, D]` on the device);
    with a `group`, each process scores its share and the figure is the whole split's.

    A model scored on holes (`model.test_holes`) is scored on holes drawn with a fixed
    seed, so that every epoch is scored on the same holes.
    """
    holes = model.test_holes(len(images), torch.Generator().manual_seed(seed), images.device)
    share = Share(len(images), group)
    return share.mean(
        lambda rows: negative_elbo(
            model, images[rows], labels[rows], None if holes is None else holes[rows]
        )
    )


class TrainingLoss(torch.nn.Module):
    """The training loss as a module, summed over a batch, nats (`scoring`): -ELBO, or
    with `particles` K > 1 minus the importance-weighted bound of K particles; a second
    term: when asked, the cross-entropy of the Bayes-rule label posterior, else the
    model's own `auxiliary_loss` (a pixels run's baseline network; 0 for most); and the
    KL part of the -ELBO, which KL warm-up weighs down.

    `DistributedDataParallel` can only wrap a module; wrapping this one leaves the Pyro
    model and guide exactly as they are on one process. The model's `pyro.module`
    registration is skipped: the optimizer holds the parameters itself.
    """

    def __init__(self, model: CVAE, particles: int = 1) -> None:
        super().__init__()
        self.model, self.particles = model, particles

    def forward(self, images, labels, hole, with_classes: bool = False) -> torch.Tensor:
        """images `[B, D]`, labels `[B]`, hole `[B, H * W]` bool or None -> `[3]`: the
        negative bound summed over the batch; with `with_classes` the summed
        cross-entropy -log p(y | x) of the true labels, p(y | x) proportional to
        p(y) exp(bound(x, y)) over every label y (else the summed auxiliary loss); and
        the KL part of the first, summed (0 with `with_classes` or K > 1, whose bounds
        are not split). With `with_classes` the first two are read from the same L
        bounds of an image, so the first costs nothing more."""
        zero = torch.zeros((), device=images.device)
        with self.model.unregistered():
            if with_classes:
                every = label_bounds(self.model, self.particles, images, hole)
                rows = torch.arange(len(images), device=images.device)
                log_posterior = torch.log_softmax(
                    every + self.model.label_prior.log()[:, None], dim=0
                )
                cross_entropy = -log_posterior[labels, rows].sum()
                return torch.stack([-every[labels, rows].sum(), cross_entropy, zero])
            if self.particles > 1:
                loss, kl = -bounds(self.model, self.particles, images, labels, hole).sum(), zero
            else:
                reconstruction, kl = negative_elbo_parts(self.model, images, labels, hole)
                loss = reconstruction + kl
            return torch.stack([loss, self.model.auxiliary_loss(images, labels, hole), kl])


@dataclass
class EpochMetrics:
    """One finished epoch: losses in nats per image (`train_loss` and `test_loss` the
    negative bound, `class_loss` the mean training cross-entropy of the label posterior,
    None in an epoch without that term, `auxiliary_loss` the mean of the model's own
    `auxiliary_loss`, a pixels run's baseline network's, None without one), `seconds` of
    training steps (the slowest process's), over the `processes` that trained it together."""

    epoch: int
    train_loss: float
    test_loss: float
    seconds: float
    images_per_s: float
    processes: int = 1
    class_loss: float | None = None
    auxiliary_loss: float | None = None

    def to_dict(self) -> dict:
        """Its fields; `class_loss` and `auxiliary_loss` only where the epoch had them."""
        optional = ("class_loss", "auxiliary_loss")
        return {k: v for k, v in self.__dict__.items() if k not in optional or v is not None}


@dataclass
class TrainState:
    """Where training stands; everything needed to resume it exactly.

    `epoch`: finished epochs. `step`: steps done in the epoch in progress (0 at an epoch
    boundary), with its index `permutation` and the running sums of its loss, of the
    objective's second term (`TrainingLoss`: the label cross-entropy or the model's
    auxiliary loss) and its seconds.
    """

    epoch: int = 0
    step: int = 0
    permutation: torch.Tensor | None = None
    loss_sum: float = 0.0
    class_loss_sum: float = 0.0
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
    `group`: the torchrun process group this process trains in (its device is used),
    None on one process. `config.batch_size` is the batch of the whole group.
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
        group: ProcessGroup | None = None,
    ) -> None:
        if group is not None and config.batch_size % group.world_size:
            raise UsageError(
                f"--batch-size {config.batch_size} does not divide among "
                f"{group.world_size} processes; choose a multiple of {group.world_size}"
            )
        self.config, self.group = config, group
        self.device = group.device if group is not None else torch.device(device)
        self.sync_every = sync_every
        pyro.set_rng_seed(config.seed)
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.model.fit_label_prior(train_labels.to(self.device))
        self.optimizer = make_optimizer(self.model, config.lr)
        self._loss: torch.nn.Module = TrainingLoss(self.model, config.train_particles)
        self.train_x = train_images.reshape(len(train_images), -1).to(self.device)
        self.train_y = train_labels.to(self.device)
        self.test_x = test_images.reshape(len(test_images), -1).to(self.device)
        self.test_y = test_labels.to(self.device)
        self.state = TrainState()

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_x) / self.config.batch_size)

    def step(self, index: torch.Tensor) -> torch.Tensor:
        """One Adam step on the batch of training images `index` `[b]` (under a group,
        the same `index` on every process, each taking its share); returns this
        process's share of the batch's loss sums `[3]` (`TrainingLoss`) in nats, left on
        the device.

        The gradient is that of the whole batch's mean loss: DDP averages the
        processes' gradients, so each scales its share's sum by world size / b. A
        process left without a share (a last batch smaller than the group) still takes
        part in the averaging, with one image that counts for nothing.
        """
        if self.group is None:
            return self._descend(index, 1 / len(index))
        mine, weight = self.group.shard(index), self.group.world_size / len(index)
        if not len(mine):
            mine, weight = index[:1], 0.0
        if isinstance(self._loss, TrainingLoss):  # wrapped once every process is ready
            self._loss = self.group.wrap(self._loss)
        return self.group.collective(lambda: self._descend(mine, weight))

    @property
    def with_classes(self) -> bool:
        """Whether the epoch in progress adds the label cross-entropy to the objective.

        When the term begins after epochs without it, Adam starts afresh: its moment
        estimates are those of the bound's gradients alone, and scaled by them the first
        steps on the new objective, up to `class_weight` times larger, would throw the
        model far (an MNIST run's held-out -ELBO went from 102 to 166 in that epoch)."""
        first = self.config.class_term_from()
        return first is not None and self.state.epoch >= first

    def set_learning_rate(self) -> None:
        """Adam's rate for the epoch in progress: `config.lr` on `config.lr_schedule`,
        times `config.class_lr_scale` in the epochs with the label cross-entropy."""
        scale = self.config.class_lr_scale if self.with_classes else 1.0
        if self.config.lr_schedule == "cosine":
            scale *= (1 + math.cos(math.pi * self.state.epoch / self.config.epochs)) / 2
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * scale

    @property
    def kl_scale(self) -> float:
        """The weight of the KL part of the -ELBO in the step in progress: with
        `config.kl_warmup` E > 0 it rises linearly by step, from 1 / (E x steps an
        epoch) at the first step to 1 at the last step of epoch E, and stays 1 after
        (KL warm-up, Bowman et al. 2016, Sønderby et al. 2016); 1 without."""
        if not self.config.kl_warmup:
            return 1.0
        done = self.state.epoch * self.steps_per_epoch + self.state.step + 1
        return min(1.0, done / (self.config.kl_warmup * self.steps_per_epoch))

    def _descend(self, mine: torch.Tensor, weight: float) -> torch.Tensor:
        """Adam on `weight` x the objective of the images `mine` `[m]`; their loss sums
        `[3]` (`TrainingLoss`), counted (0 where `weight` is)."""
        with_classes = self.with_classes
        losses = self._loss(*self.batch(mine), with_classes)
        second_weight = self.config.class_weight if with_classes else 1.0
        objective = losses[0] - (1 - self.kl_scale) * losses[2] + second_weight * losses[1]
        self.optimizer.zero_grad(set_to_none=True)
        (objective * weight).backward()
        self.optimizer.step()
        return losses.detach() if weight else torch.zeros_like(losses.detach())

    def batch(self, mine: torch.Tensor) -> tuple:
        """The training images `mine` `[m]` as a step trains on them: (flat images `[m, D]`,
        labels `[m]`, holes `[m, H * W]` bool or None), the images moved by random whole
        pixels when `config.shift` is set, then turned and scaled at random when
        `config.rotation` or `config.scaling` is, the holes fresh where the model trains on
        holes. Draws from the global random state, in that order."""
        x, y = self.train_x[mine], self.train_y[mine]
        config = self.config
        if config.shift or config.rotation or config.scaling:
            moved = random_shifts(x.view(len(mine), *config.image_shape), config.shift)
            x = random_turns(moved, config.rotation, config.scaling).reshape(len(mine), -1)
        return x, y, self.model.training_holes(len(mine), device=self.device)

    def _agree(self, flag: bool) -> bool:
        """`flag` on one process; under a group, true when any process's is."""
        return flag if self.group is None else self.group.any(flag)

    def _check_finite(self, losses: list[torch.Tensor], first_step: int) -> tuple[float, float]:
        """Sums of the pending batch losses `[3]` each (over the group's processes): the
        loss and the second term (`TrainingLoss`); a clear error at the first non-finite one (on
        every process alike)."""
        stacked = torch.stack(losses)
        values = (stacked if self.group is None else self.group.sum(stacked)).tolist()
        for offset, row in enumerate(values):
            for value in row:
                if not math.isfinite(value):
                    raise LossNotFinite(
                        f"the loss became {value} at epoch {self.state.epoch + 1}, step "
                        f"{first_step + offset + 1}; try a lower learning rate"
                    )
        return sum(row[0] for row in values), sum(row[1] for row in values)

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
            for name in MOMENTS:
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

    def _permutation(self) -> torch.Tensor:
        """A fresh batch order of the training images `[N]`; rank 0's under a group."""
        order = torch.randperm(len(self.train_x), device=self.device)
        return order if self.group is None else self.group.broadcast(order)

    def _own_noise(self) -> None:
        """Under a group, every process starts from rank 0's random state (fresh or
        resumed); the others then seed their own noise, a function of where they start,
        so that their shares of a batch get independent z and holes."""
        if self.group is not None and self.group.rank:
            state = self.state
            torch.manual_seed(self.group.own_seed(self.config.seed, state.epoch, state.step))

    def _refit_prior(self) -> None:
        """`fit_prior_to_posterior` on the training split; under a group, each process
        encodes its share and the sums are reduced."""
        if self.group is None:
            self.model.fit_prior_to_posterior(self.train_x, self.train_y)
        else:
            shard = self.group.shard
            x, y = shard(self.train_x), shard(self.train_y)
            self.model.fit_prior_to_posterior(x, y, summed=self.group.sum)

    def _run(self, hooks: Hooks) -> list[EpochMetrics]:
        state, batch = self.state, self.config.batch_size
        total_steps = self.steps_per_epoch
        processes = 1 if self.group is None else self.group.world_size
        self._own_noise()
        while state.epoch < self.config.epochs:
            self.model.train()
            if state.step == 0:
                state.permutation = self._permutation()
                if state.epoch and state.epoch == self.config.class_term_from():
                    self.optimizer.state.clear()  # see `with_classes`
                self.set_learning_rate()
            pending: list[torch.Tensor] = []
            pending_from = state.step
            started = time.perf_counter()
            stopped = False
            while state.step < total_steps:
                index = state.permutation[state.step * batch : (state.step + 1) * batch]
                pending.append(self.step(index))
                state.step += 1
                if self.device.type == "cpu" and state.step % FLUSH_EVERY == 0:
                    self._flush_tiny_moments()
                if hooks.on_step:
                    hooks.on_step(state.step, total_steps)
                stop = self._agree(bool(hooks.should_stop and hooks.should_stop()))
                if len(pending) == self.sync_every or state.step == total_steps or stop:
                    loss, class_loss = self._check_finite(pending, pending_from)
                    state.loss_sum += loss
                    state.class_loss_sum += class_loss
                    pending, pending_from = [], state.step
                if stop:
                    stopped = state.step < total_steps
                    break
            state.seconds += time.perf_counter() - started
            if stopped:
                if hooks.save:
                    hooks.save(state)
                return state.history
            self.model.eval()
            self._refit_prior()
            seconds = state.seconds if self.group is None else self.group.largest(state.seconds)
            metrics = EpochMetrics(
                epoch=state.epoch + 1,
                train_loss=state.loss_sum / len(self.train_x),
                test_loss=test_loss(self.model, self.test_x, self.test_y, group=self.group),
                seconds=seconds,
                images_per_s=len(self.train_x) / seconds,
                processes=processes,
                class_loss=state.class_loss_sum / len(self.train_x) if self.with_classes else None,
                auxiliary_loss=(
                    state.class_loss_sum / len(self.train_x)
                    if self.model.has_auxiliary_loss
                    else None
                ),
            )
            state.history.append(metrics)
            state.epoch += 1
            state.step, state.permutation, state.seconds = 0, None, 0.0
            state.loss_sum = state.class_loss_sum = 0.0
            if hooks.save:
                hooks.save(state)
            if hooks.on_epoch:
                hooks.on_epoch(metrics)
            if self._agree(bool(hooks.should_stop and hooks.should_stop())):
                break
        return state.history
