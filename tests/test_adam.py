"""`FusedAdam` is `torch.optim.Adam(fused=True)`: the same updates, bit for bit, and
state dicts that load into each other (checkpoints written before it still resume)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pyro_cvae.adam import FusedAdam


def network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))


def train(net: torch.nn.Module, optimizer, steps: range, lr_from: int = 3) -> None:
    """A few steps on fixed random data, the rate halved from step `lr_from`; the last
    layer's bias is left without a gradient in odd steps."""
    for step in steps:
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(8, 6, generator=generator)
        loss = net(x).pow(2).sum() if step % 2 == 0 else net[0](x).pow(2).sum()
        for group in optimizer.param_groups:
            group["lr"] = 0.01 if step < lr_from else 0.005
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def test_updates_are_torch_fused_adams_bit_for_bit():
    ours, theirs = network(0), network(0)
    train(ours, FusedAdam(ours.parameters(), lr=0.01), range(7))
    train(theirs, torch.optim.Adam(theirs.parameters(), lr=0.01, fused=True), range(7))
    for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine, reference)
    assert not torch.equal(ours[0].weight, network(0)[0].weight)  # it did train


@pytest.mark.parametrize("first, then", [("torch", "ours"), ("ours", "torch")])
def test_state_dicts_interchange(first, then):
    """Train 4 steps with one optimizer, save, resume with the other: the same weights as
    7 steps with torch's alone."""
    make = {
        "torch": lambda net: torch.optim.Adam(net.parameters(), lr=0.01, fused=True),
        "ours": lambda net: FusedAdam(net.parameters(), lr=0.01),
    }
    net, reference = network(1), network(1)
    before = make[first](net)
    train(net, before, range(4))
    saved = before.state_dict()
    after = make[then](net)
    after.load_state_dict(saved)
    train(net, after, range(4, 7))
    train(reference, make["torch"](reference), range(7))
    for mine, expected in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine, expected)


def test_a_state_dict_for_other_parameters_is_refused():
    small = FusedAdam(network(0).parameters(), lr=0.01)
    other = torch.nn.Linear(6, 5)
    optimizer = FusedAdam(other.parameters(), lr=0.01)
    other(torch.ones(1, 6)).sum().backward()
    optimizer.step()
    with pytest.raises(ValueError, match="parameters"):
        small.load_state_dict(optimizer.state_dict())


def test_creating_it_does_not_import_the_compiler():
    """The point of it: `torch._dynamo` (0.7 s) stays unimported (checked in a fresh
    interpreter)."""
    code = (
        "import sys, torch; from pyro_cvae.adam import FusedAdam; "
        "p = torch.nn.Parameter(torch.ones(3)); o = FusedAdam([p], lr=0.1); "
        "p.grad = torch.ones(3); o.step(); print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
