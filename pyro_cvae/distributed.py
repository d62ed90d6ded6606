"""Data-parallel work across the processes `torchrun` starts: the process group made from
its environment, and the few collectives that training and evaluation need.

`ProcessGroup.from_environment()` is None without torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so single-process code never changes. Under
torchrun every process (rank) keeps the whole dataset and takes its share of every batch
(`shard`); gradients are averaged by `DistributedDataParallel` (`wrap`); losses, counts
and timings are reduced here. NCCL on CUDA (one GPU per local rank), Gloo on the CPU.

A collective that fails (another process died) or waits longer than the group's timeout
(another process hangs) raises a `ProcessGroupError` in one line: never a silent hang.
"""

from __future__ import annotations

import datetime
import gc
import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from .config import DIST_TIMEOUT_S, TORCHRUN_VARIABLES
from .errors import ProcessGroupError, RankZeroStopped, first_line

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """True when this process was started by torchrun (or a launcher that sets its
    variables, such as a Slurm script)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def _device(name: str, local_rank: int) -> torch.device:
    """`name` "auto" | "cpu" | "cuda" for the process of `local_rank`: its own GPU."""
    from .train import resolve_device  # train imports this module

    if resolve_device(name).type == "cpu":
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise ProcessGroupError(
            f"local rank {local_rank} has no GPU of its own: this machine has "
            f"{torch.cuda.device_count()}; start at most that many processes per node"
        )
    return torch.device("cuda", local_rank)


@dataclass
class ProcessGroup:
    """This process's place in the group: `rank` of `world_size`, on `device`; rank 0 is
    the only one that writes files."""

    rank: int
    world_size: int
    device: torch.device
    timeout_s: float
    # where flags are agreed every step without waiting for the GPU: a Gloo group
    # beside NCCL, None (the default group) on the CPU
    flags: object = None

    @classmethod
    def from_environment(
        cls, device: str = "auto", timeout_s: float = DIST_TIMEOUT_S
    ) -> ProcessGroup | None:
        """Join the group torchrun's environment describes (None without it): NCCL on
        CUDA, Gloo on the CPU; a collective waits at most `timeout_s` seconds."""
        if not launched_by_torchrun():
            return None
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        place = _device(device, int(os.environ["LOCAL_RANK"]))
        if place.type == "cuda":
            torch.cuda.set_device(place)
        backend = "nccl" if place.type == "cuda" else "gloo"
        try:
            dist.init_process_group(
                backend,
                timeout=datetime.timedelta(seconds=timeout_s),
                device_id=place if place.type == "cuda" else None,
            )
        except (RuntimeError, ValueError) as error:
            raise ProcessGroupError(
                f"rank {rank} could not join the {world_size} processes: {first_line(error)}"
            ) from None
        flags = None
        if backend == "nccl":
            flags = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))
        return cls(rank, world_size, place, timeout_s, flags)

    @property
    def writer(self) -> bool:
        return self.rank == 0

    def own_seed(self, *where: int) -> int:
        """A seed in [0, 2**32) for this process's own random draws at `where` (the run's
        seed, a position in it), different on every rank."""
        return hash((self.rank, *where)) % 2**32

    def close(self, together: bool = True) -> None:
        """Leave the group at the end of the command: `together`, once every process
        is there (one that leaves early can crash Gloo's threads at exit); otherwise
        (after an error, when the others may never come) at once. Leaving together,
        objects that hold the group (a DistributedDataParallel wrapper in a reference
        cycle) are collected first, so that Gloo's threads end here rather than at
        interpreter exit; after an error they are left alone (one may wait on a peer
        that is gone)."""
        if not dist.is_initialized():
            return
        if together:
            gc.collect()
            try:
                dist.barrier()
            except RuntimeError:  # the group broke meanwhile
                pass
        dist.destroy_process_group()

    def collective(self, work: Callable[[], T]) -> T:
        """`work()`, a call that talks to the other processes; its failure or timeout as a
        `ProcessGroupError` naming this rank and the likely cause."""
        try:
            return work()
        except RuntimeError as error:
            if not _lost_contact(error):
                raise
            raise ProcessGroupError(
                f"rank {self.rank} lost the other processes (one died, or did not answer "
                f"within {self.timeout_s:g} s): {_cause(error)}"
            ) from None

    def bounds(self, total: int, rank: int | None = None) -> tuple[int, int]:
        """(start, stop) of the share of `total` items that `rank` (default: this one)
        takes: consecutive equal parts, the first ones one longer when `total` does not
        divide."""
        rank = self.rank if rank is None else rank
        base, longer = divmod(total, self.world_size)
        start = rank * base + min(rank, longer)
        return start, start + base + (rank < longer)

    def shard(self, items: torch.Tensor) -> torch.Tensor:
        """This rank's share of `items` (dim 0), a view (`bounds`)."""
        start, stop = self.bounds(len(items))
        return items[start:stop]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the processes, element by element (a new tensor)."""
        total = values.clone()
        self.collective(lambda: dist.all_reduce(total))
        return total

    def largest(self, value: float) -> float:
        """The largest of every process's `value`."""
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        self.collective(lambda: dist.all_reduce(tensor, op=dist.ReduceOp.MAX))
        return tensor.item()

    def any(self, flag: bool) -> bool:
        """True when `flag` is true on any process (so that all decide alike); on the
        CPU, so that it never waits for a GPU's queued work."""
        tensor = torch.tensor([int(flag)])
        self.collective(lambda: dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.flags))
        return bool(tensor.item())

    def broadcast(self, values: torch.Tensor) -> torch.Tensor:
        """Rank 0's `values` on every process (in place)."""
        self.collective(lambda: dist.broadcast(values, src=0))
        return values

    def share(self, item):
        """Rank 0's `item` (any picklable object: a run's state) on every process, its
        tensors on the CPU (rank 0's GPU tensors would arrive on GPU 0 everywhere)."""
        box = [_on_cpu(item) if self.writer else None]
        self.collective(lambda: dist.broadcast_object_list(box, src=0, device=self._wire))
        return box[0]

    def rank_0_first(self, work: Callable[[], T]) -> T:
        """`work()` on rank 0, then, once it succeeded there, on the others; when it
        failed on rank 0 (which tells why), a `RankZeroStopped` on the others."""
        succeeded = False
        try:
            if self.writer:
                result = work()
                succeeded = True
        finally:
            succeeded = self.share(succeeded)
        if self.writer:
            return result
        if not succeeded:
            raise RankZeroStopped(f"rank {self.rank}: rank 0 failed")
        return work()

    def gather(self, values: torch.Tensor, total: int) -> torch.Tensor:
        """Every rank's `values` (`[n_rank, ...]`, from `shard` of `total` items), joined
        in rank order into `[total, ...]` on every process."""
        sizes = [
            stop - start
            for start, stop in map(self.bounds, [total] * self.world_size, range(self.world_size))
        ]
        padded = values.new_zeros((sizes[0], *values.shape[1:]))
        padded[: len(values)] = values
        parts = [torch.empty_like(padded) for _ in sizes]
        self.collective(lambda: dist.all_gather(parts, padded))
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in `DistributedDataParallel`: its backward averages the gradients of
        every parameter over the processes (and it starts from rank 0's weights)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return self.collective(lambda: DistributedDataParallel(module, device_ids=ids))

    @property
    def _wire(self) -> torch.device | None:
        """Where `broadcast_object_list` stages its bytes: the GPU for NCCL."""
        return self.device if self.device.type == "cuda" else None


class Share:
    """This process's share of `total` items, `rows` (a slice: all of them without a
    group), and the whole group's results made from every share's."""

    def __init__(self, total: int, group: ProcessGroup | None = None) -> None:
        self.total, self.group = total, group
        start, stop = (0, total) if group is None else group.bounds(total)
        self.rows, self.count = slice(start, stop), stop - start

    def join(self, score: Callable[[slice], torch.Tensor]) -> torch.Tensor:
        """Every item's float32 results `[total]`, from `score(rows)`, a share's `[count]`
        (not called for an empty share)."""
        if self.group is None:
            return score(self.rows)
        empty = torch.zeros(0, device=self.group.device)
        values = score(self.rows).float() if self.count else empty
        return self.group.gather(values, self.total)

    def mean(self, score: Callable[[slice], float]) -> float:
        """The mean over every item, from `score(rows)`, the mean over a share's items."""
        if self.group is None:
            return score(self.rows)
        part = score(self.rows) * self.count if self.count else 0.0
        total = torch.tensor([part], dtype=torch.float64, device=self.group.device)
        return self.group.sum(total).item() / self.total


@contextmanager
def process_group(
    device: str = "auto", timeout_s: float = DIST_TIMEOUT_S
) -> Iterator[ProcessGroup | None]:
    """`ProcessGroup.from_environment` for the length of a command (None without
    torchrun), left at the end, however the command ends: together when it ends as
    every process agreed (done, or stopped by a signal), at once after an error."""
    group = ProcessGroup.from_environment(device, timeout_s)
    together = False
    try:
        yield group
        together = True
    except SystemExit as end:  # a stop every process agreed on, unless a 2nd Ctrl-C's
        together = end.code != 130
        if together:  # the command's frames, kept by the traceback, hold the group
            traceback.clear_frames(end.__traceback__)
        raise
    finally:
        if group is not None:
            group.close(together)


def _on_cpu(item):
    """`item` with every tensor in its dicts, lists and tuples copied to the CPU."""
    if isinstance(item, torch.Tensor):
        return item.cpu()
    if isinstance(item, dict):
        return {key: _on_cpu(value) for key, value in item.items()}
    if isinstance(item, (list, tuple)):
        return type(item)(_on_cpu(value) for value in item)
    return item


def _lost_contact(error: RuntimeError) -> bool:
    """Whether `error` comes from the communication layer rather than from the work."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        mark in text.lower() for mark in ("gloo", "nccl", "connection", "timed out", "timeout")
    )


def _cause(error: BaseException) -> str:
    """The readable part of a Gloo or NCCL error: its first line, less the source path."""
    line = first_line(error, limit=400)
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return line.split(". ", 1)[0].rstrip(".")
