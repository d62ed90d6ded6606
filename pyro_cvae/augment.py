"""Training-time augmentation: random shifts (`RunConfig.shift`) and random turns and
scalings (`RunConfig.rotation`, `RunConfig.scaling`) of the training images, and the affine
warp that turns, scales and moves them (also the digit judge's, `judge.random_affine`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_shifts(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Images `[N, C, H, W]` each moved by its own whole number of pixels, drawn uniformly
    from [-max_shift, max_shift] along each axis (the global random state, on the images'
    device); the border they uncover takes the nearest edge pixel. Same shape and dtype."""
    if not max_shift:
        return images
    n, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)  # [N, H]
    cols = offsets[1, :, None] + torch.arange(width, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    moved = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return moved.permute(0, 3, 1, 2)


def affine_warp(
    images: torch.Tensor,
    angle: torch.Tensor,
    scale: torch.Tensor,
    move: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images `[N, C, H, W]` each sampled `move` `[N, 2]` pixels away (x right, y down;
    None: not moved), so moved by -`move`, then turned counter-clockwise on screen about
    its centre by `angle` `[N]` radians and scaled by the factor `scale` `[N]` (bilinear;
    the area uncovered is zero). `angle`, `scale` and `move` share a device. Same shape
    and dtype as `images`."""
    n, _, height, width = images.shape
    if move is None:
        move = torch.zeros(n, 2, device=angle.device)
    move = move * 2 / torch.tensor([width, height], device=move.device)  # in [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    aspect = height / width  # a turn by pixels, not by affine_grid's units, on any image
    theta = torch.stack(
        [
            torch.stack([cos, -sin * aspect, move[:, 0]], 1),
            torch.stack([sin / aspect, cos, move[:, 1]], 1),
        ],
        1,
    ).to(images.device, images.dtype)  # [N, 2, 3]: output coordinates -> input coordinates
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def random_turns(images: torch.Tensor, max_degrees: float, max_scaling: float) -> torch.Tensor:
    """Images `[N, C, H, W]` each turned about its centre by its own angle drawn uniformly
    from [-max_degrees, max_degrees] degrees and scaled by a factor drawn uniformly from
    [1 - max_scaling, 1 + max_scaling] (the global random state of the images' device;
    `affine_warp`). Both 0 return the images unchanged."""
    if not max_degrees and not max_scaling:
        return images
    n, device = len(images), images.device
    angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(max_degrees)
    scale = 1 + (torch.rand(n, device=device) * 2 - 1) * max_scaling
    return affine_warp(images, angle, scale)
