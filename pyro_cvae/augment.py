"""Training-time augmentation: random shifts of the training images (`RunConfig.shift`)."""

from __future__ import annotations

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
