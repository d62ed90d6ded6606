"""Plain `nn.Module` networks for the CVAEs; no Pyro here.

Pixels are flat: an image is `[N, 784]`; several image-shaped planes stacked as the input
channels of a network (an image and its hole mask, say) are `[N, in_channels * 784]`
(channel-major). Conditioning vectors are `[N, cond_dim]`
(`cond_dim` may be 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

SIZE = 28
PIXELS = SIZE * SIZE


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ConvTrunk(nn.Module):
    """Two stride-2 convolutions: `[N, in_channels * 784]` -> `[N, 64 * 7 * 7]` features."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.out_dim = 64 * 7 * 7

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels.view(-1, self.in_channels, SIZE, SIZE))


class Features(nn.Module):
    """Input channels `[N, in_channels * 784]` and a conditioning vector -> one feature
    vector `[N, out_dim]`.

    "mlp" concatenates the flat pixels with the condition and applies the hidden layers;
    "conv" runs a convolutional trunk on the pixels first.
    """

    def __init__(self, in_channels: int, cond_dim: int, hidden: Sequence[int], arch: str) -> None:
        super().__init__()
        self.trunk = _ConvTrunk(in_channels) if arch == "conv" else None
        pixel_dim = self.trunk.out_dim if self.trunk is not None else in_channels * PIXELS
        self.layers = nn.Sequential(mlp([pixel_dim + cond_dim, *hidden]), nn.ReLU())
        self.out_dim = hidden[-1]

    def forward(self, pixels: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            pixels = self.trunk(pixels)
        return self.layers(torch.cat([pixels, cond], dim=-1) if cond.shape[-1] else pixels)


class GaussianEncoder(nn.Module):
    """q(z | pixels, cond) or p(z | pixels, cond): returns `(loc, scale)`, each `[N, z_dim]`."""

    def __init__(
        self,
        *,
        in_channels: int,
        cond_dim: int,
        z_dim: int,
        hidden: Sequence[int],
        arch: str = "mlp",
    ) -> None:
        super().__init__()
        self.features = Features(in_channels, cond_dim, hidden, arch)
        self.loc = nn.Linear(self.features.out_dim, z_dim)
        self.log_var = nn.Linear(self.features.out_dim, z_dim)

    def forward(
        self, pixels: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(pixels, cond)
        return self.loc(h), torch.exp(0.5 * self.log_var(h))


class Classifier(nn.Module):
    """Logits `[N, num_labels]` of a label given input channels `[N, in_channels * 784]`.

    "mlp": the hidden layers on the flat pixels; "conv": a small CNN (3x3 convolutions of
    32 and 64 channels, each followed by 2x2 max pooling) then one hidden layer of
    `hidden[-1]` units. `dropout` (a probability) acts before the dense layers, in
    training only.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_labels: int,
        hidden: Sequence[int],
        arch: str = "mlp",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if arch == "conv":
            self.features = nn.Sequential(
                nn.Unflatten(1, (in_channels, SIZE, SIZE)),
                nn.Conv2d(in_channels, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(64 * 7 * 7, hidden[-1]),
                nn.ReLU(),
            )
        else:
            self.features = nn.Sequential(mlp([in_channels * PIXELS, *hidden]), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(hidden[-1], num_labels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.logits(self.dropout(self.features(pixels)))


class Decoder(nn.Module):
    """Pixel-distribution parameters `[N, out_channels * 784]` from `z` `[N, z_dim]` and a
    conditioning vector `[N, cond_dim]`.

    "mlp" mirrors the encoder's hidden layers; "conv" maps to 64x7x7 features and
    up-samples with two transposed convolutions.
    """

    def __init__(
        self,
        *,
        z_dim: int,
        cond_dim: int,
        hidden: Sequence[int],
        out_channels: int = 1,
        arch: str = "mlp",
    ) -> None:
        super().__init__()
        sizes = [z_dim + cond_dim, *reversed(hidden)]
        if arch == "conv":
            self.layers = nn.Sequential(
                mlp([*sizes, 64 * 7 * 7]),
                nn.ReLU(),
                nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
                nn.ReLU(),
                nn.ConvTranspose2d(32, out_channels, 4, stride=2, padding=1),
                nn.Flatten(),
            )
        else:
            self.layers = mlp([*sizes, out_channels * PIXELS])

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """`z` may carry leading particle dimensions `[K, N, z_dim]`; `cond` `[N, cond_dim]`
        is then shared by every particle. Returns `[*z.shape[:-1], out_channels * 784]`."""
        if cond.shape[-1]:
            z = torch.cat([z, cond.expand(*z.shape[:-1], cond.shape[-1])], dim=-1)
        return self.layers(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)
