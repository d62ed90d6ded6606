"""What glibc's allocator costs `classify --mask top-half`, and what keeping freed memory
(`pyro_cvae.allocator.keep_freed_memory`, which every `pyro-cvae` command does) saves.

Each figure is one fresh process (median over `--runs`, wall and CPU seconds), for the
first `--images` test images of the run's dataset with the top half removed:

    project       `label_posterior`, as `classify` runs it: every label, `--particles`
                  per round, `--rounds` adaptive rounds
    plain PyTorch the same number of decodes with no Pyro: the run's decoder on standard
                  normal z in chunks of `scoring.CHUNK_ROWS` rows, and the Bernoulli
                  log-likelihood of the observed pixels, summed (the floor of the work)

each under glibc's defaults and with freed memory kept.

    flock /tmp/pyro-cvae-cpu.lock .venv/bin/python benchmarks/classify_allocator.py RUN_DIR
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).parent))
from throughput import machine  # noqa: E402

WAYS = ("project", "plain PyTorch")
ALLOCATORS = ("glibc default", "freed memory kept")


@dataclass
class Job:
    """What every process classifies: the first `images` test images of the dataset of
    the run in `run_dir` (read from `data_dir`, None: where it is found), top half removed."""

    run_dir: str
    data_dir: str | None
    images: int
    particles: int
    rounds: int


def work(job: Job, way: str) -> None:
    """Do one way's work for `job` in this process."""
    import torch
    import torch.nn.functional as F

    from pyro_cvae.checkpoint import load_run
    from pyro_cvae.data import load_run_split
    from pyro_cvae.masks import parse_mask
    from pyro_cvae.posterior import label_posterior
    from pyro_cvae.scoring import chunks

    run = load_run(job.run_dir, "cpu")
    model, test = run.model, load_run_split(run.config, "test", job.data_dir).images
    test = test[: job.images]
    holes = parse_mask("top-half").holes(len(test), size=test.shape[-2:])
    if way == "project":
        label_posterior(model, test, holes, particles=job.particles, rounds=job.rounds, seed=0)
        return
    torch.manual_seed(0)
    x, observed = model.flat_images(test), ~model.hole_values(model.flat_holes(holes))
    rows_per_image = model.num_labels * job.particles * job.rounds
    with torch.no_grad():
        for part in chunks(len(test) * rows_per_image):
            rows = torch.arange(part.start, part.stop)
            image = torch.div(rows, rows_per_image, rounding_mode="floor")
            z = torch.randn(1, len(rows), model.z_dim)
            logits = model.decode(z, rows % model.num_labels)[0]
            pixels = F.binary_cross_entropy_with_logits(logits, x[image], reduction="none")
            (pixels * observed[image]).sum()


def timed(job: Job, way: str, allocator: str) -> tuple[float, float, float]:
    """(wall, user, system) seconds of one fresh process doing `work` under `allocator`."""
    child = json.dumps({"job": asdict(job), "way": way, "allocator": allocator})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, job.run_dir, "--child", child], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def child_process(text: str) -> None:
    """The work of one timed process, described by `timed`'s JSON `text`."""
    task = json.loads(text)
    if task["allocator"] == ALLOCATORS[1]:
        from pyro_cvae.allocator import keep_freed_memory

        if not keep_freed_memory():
            raise click.ClickException("this C library is not glibc: nothing to compare")
    work(Job(**task["job"]), task["way"])


@click.command()
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--data-dir", default=None, help="Where the run's dataset is (default: found).")
@click.option("--images", default=32, show_default=True, help="Test images classified.")
@click.option("--particles", default=100, show_default=True, help="classify's default.")
@click.option("--rounds", default=5, show_default=True, help="classify's default with a mask.")
@click.option("--runs", default=3, show_default=True, help="Fresh processes per figure.")
@click.option("--child", hidden=True, help="One timed process's task (JSON).")
def main(run_dir, data_dir, images, particles, rounds, runs, child) -> None:
    """Print one row per way and allocator: median wall, user and system seconds."""
    if child:
        child_process(child)
        return
    from pyro_cvae.checkpoint import load_run

    config = load_run(run_dir).config
    if config.condition != "label" or config.likelihood != "bernoulli":
        raise click.ClickException("RUN_DIR must be a label run with Bernoulli pixels")
    job = Job(run_dir, data_dir, images, particles, rounds)
    print("\n".join(machine()))
    print(f"{images} test images, top half removed, {particles} particles x {rounds} rounds\n")
    print("| way | allocator | wall s | user s | system s |")
    print("|---|---|---:|---:|---:|")
    for way in WAYS:
        for allocator in ALLOCATORS:
            times = [timed(job, way, allocator) for _ in range(runs)]
            wall, user, system = (statistics.median(column) for column in zip(*times))
            print(f"| {way} | {allocator} | {wall:.1f} | {user:.1f} | {system:.1f} |")


if __name__ == "__main__":
    main()
