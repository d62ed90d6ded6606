"""Plain `nn.Module` networks for the CVAEs; no Pyro here.

Images are flat inside the models: an image of `size` (H, W) with C channels is
`[N, C * H * W]` (channel-major); several image-shaped planes stacked as the input
channels of a network (an image and its hole mask, say) are `[N, in_channels * H * W]`.
Conditioning vectors are `[N, cond_dim]` (`cond_dim` may be 0). The depth of the
convolutional networks follows the image size: stride-2 levels until the smaller side is
at most 8 (28x28: two levels, to 7x7; 32x32: two, to 8x8; 64x64: three), `width`
channels at the first level (32 unless told), doubling at each next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .errors import DataError

DEEPEST_SIDE = 8
FIRST_WIDTH = 32


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def conv_levels(size: tuple[int, int]) -> list[tuple[int, int]]:
    """The spatial sizes (H, W) of a conv network's levels: `size`, then halved (rounded
    down) until the smaller side is at most `DEEPEST_SIDE` (at least one halving)."""
    if min(size) < 2:
        raise DataError(
            f"conv networks need images of at least 2x2 pixels, got {size[1]}x{size[0]}; "
            "use --arch mlp or a larger --image-size"
        )
    levels = [tuple(size)]
    while len(levels) == 1 or min(levels[-1]) > DEEPEST_SIDE:
        h, w = levels[-1]
        if min(h, w) < 2:
            break
        levels.append((h // 2, w // 2))
    return levels


def _widths(levels: int, first: int) -> list[int]:
    return [first * 2**i for i in range(levels)]


class Residual(nn.Module):
    """x + conv3x3(ReLU(conv3x3(x))), then ReLU: `[N, channels, H, W]` in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inner = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.inner(x))


class _ConvTrunk(nn.Module):
    """Stride-2 4x4 convolutions, one per level (`conv_levels`), each followed by a
    `Residual` block for `residual`: `[N, in_channels * H * W]` -> `[N, out_dim]`."""

    def __init__(
        self, in_channels: int, size: tuple[int, int], width: int, residual: bool = False
    ) -> None:
        super().__init__()
        self.shape = (in_channels, *size)
        levels = conv_levels(size)
        layers: list[nn.Module] = []
        widths = [in_channels, *_widths(len(levels) - 1, width)]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
            if residual:
                layers.append(Residual(n_out))
        self.layers = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = widths[-1] * math.prod(levels[-1])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels.view(-1, *self.shape))


class Features(nn.Module):
    """Input channels `[N, in_channels * H * W]` and a conditioning vector -> one feature
    vector `[N, out_dim]`.

    "mlp" concatenates the flat pixels with the condition and applies the hidden layers;
    "conv" runs a convolutional trunk on the pixels first; "resnet" the same trunk with a
    `Residual` block after each stride-2 level.
    """

    def __init__(
        self,
        in_channels: int,
        cond_dim: int,
        hidden: Sequence[int],
        arch: str,
        size: tuple[int, int],
        width: int = FIRST_WIDTH,
    ) -> None:
        super().__init__()
        self.trunk = None
        if arch in ("conv", "resnet"):
            self.trunk = _ConvTrunk(in_channels, size, width, residual=arch == "resnet")
        pixel_dim = self.trunk.out_dim if self.trunk is not None else in_channels * math.prod(size)
        self.layers = nn.Sequential(mlp([pixel_dim + cond_dim, *hidden]), nn.ReLU())
        self.out_dim = hidden[-1]

    def forward(self, pixels: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            pixels = self.trunk(pixels)
        return self.layers(torch.cat([pixels, cond], dim=-1) if cond.shape[-1] else pixels)


class GaussianEncoder(nn.Module):
    """q(z | pixels, cond) or p(z | pixels, cond): returns `(loc, scale)`, each `[N, z_dim]`,
    for pixels `[N, in_channels * H * W]` of images of `size` (H, W)."""

    def __init__(
        self,
        *,
        in_channels: int,
        cond_dim: int,
        z_dim: int,
        hidden: Sequence[int],
        arch: str = "mlp",
        size: tuple[int, int],
        width: int = FIRST_WIDTH,
    ) -> None:
        super().__init__()
        self.features = Features(in_channels, cond_dim, hidden, arch, size, width)
        self.loc = nn.Linear(self.features.out_dim, z_dim)
        self.log_var = nn.Linear(self.features.out_dim, z_dim)

    def forward(
        self, pixels: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(pixels, cond)
        return self.loc(h), torch.exp(0.5 * self.log_var(h))


class LabelPrior(nn.Module):
    """A learned Gaussian p(z | y) per label.

    Trained as a diagonal Gaussian: one-hot labels `[N, num_labels]` -> (loc, scale), each
    `[N, z_dim]`; it starts as N(0, I) for every label. `fit(loc, scale_tril)` also keeps
    a full-covariance Gaussian per label (`[num_labels, z_dim]`,
    `[num_labels, z_dim, z_dim]`), which `fitted(labels)` gives for label indices `[...]`
    as (loc `[..., z_dim]`, scale_tril `[..., z_dim, z_dim]`) once `is_fitted`. Weights
    saved before the fit existed load as not fitted.
    """

    FITTED = ("fitted_loc", "fitted_scale_tril", "fitted_flag")

    def __init__(self, *, num_labels: int, z_dim: int) -> None:
        super().__init__()
        self.loc = nn.Linear(num_labels, z_dim, bias=False)
        self.log_scale = nn.Linear(num_labels, z_dim, bias=False)
        nn.init.zeros_(self.loc.weight)
        nn.init.zeros_(self.log_scale.weight)
        self.register_buffer("fitted_loc", torch.zeros(num_labels, z_dim))
        self.register_buffer("fitted_scale_tril", torch.eye(z_dim).repeat(num_labels, 1, 1))
        self.register_buffer("fitted_flag", torch.tensor(False))

    def forward(self, one_hot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc(one_hot), self.log_scale(one_hot).exp()

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted_flag)

    def fit(self, loc: torch.Tensor, scale_tril: torch.Tensor) -> None:
        self.fitted_loc.copy_(loc)
        self.fitted_scale_tril.copy_(scale_tril)
        self.fitted_flag.fill_(True)

    def fitted(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fitted_loc[labels], self.fitted_scale_tril[labels]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in self.FITTED:  # absent from weights saved before the fit existed
            state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Classifier(nn.Module):
    """Logits `[N, num_labels]` of a label given input channels `[N, in_channels * H * W]`.

    "mlp": the hidden layers on the flat pixels; "conv": a small CNN (3x3 convolutions,
    each followed by 2x2 max pooling, one per level of `conv_levels`: 32 and 64 channels
    for 28x28) then one hidden layer of `hidden[-1]` units. `dropout` (a probability)
    acts before the dense layers, in training only.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_labels: int,
        hidden: Sequence[int],
        arch: str = "mlp",
        dropout: float = 0.0,
        size: tuple[int, int],
        width: int = FIRST_WIDTH,
    ) -> None:
        super().__init__()
        if arch in ("conv", "resnet"):
            levels = conv_levels(size)
            widths = [in_channels, *_widths(len(levels) - 1, width)]
            layers: list[nn.Module] = [nn.Unflatten(1, (in_channels, *size))]
            for n_in, n_out in zip(widths[:-1], widths[1:]):
                layers += [nn.Conv2d(n_in, n_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            self.features = nn.Sequential(
                *layers,
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(widths[-1] * math.prod(levels[-1]), hidden[-1]),
                nn.ReLU(),
            )
        else:
            self.features = nn.Sequential(mlp([in_channels * math.prod(size), *hidden]), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(hidden[-1], num_labels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.logits(self.dropout(self.features(pixels)))


class Decoder(nn.Module):
    """Pixel-distribution parameters `[N, out_channels * H * W]` (channel-major) for images
    of `size` (H, W), from `z` `[N, z_dim]` and a conditioning vector `[N, cond_dim]`.

    "mlp" mirrors the encoder's hidden layers; "conv" maps to the deepest level's features
    and up-samples with one stride-2 transposed convolution per level (`conv_levels`);
    "resnet" puts a `Residual` block before each of those up-samplings. With
    `cond_every_level` (conv and resnet), each transposed convolution also reads the
    conditioning vector as `cond_dim` constant planes beside its input channels (a
    label's one-hot code, say: not a long vector).
    """

    def __init__(
        self,
        *,
        z_dim: int,
        cond_dim: int,
        hidden: Sequence[int],
        out_channels: int = 1,
        arch: str = "mlp",
        size: tuple[int, int],
        width: int = FIRST_WIDTH,
        cond_every_level: bool = False,
    ) -> None:
        super().__init__()
        if cond_every_level and arch not in ("conv", "resnet"):
            raise ValueError("cond_every_level is for conv and resnet decoders")
        self.cond_every_level = cond_every_level
        planes_in = cond_dim if cond_every_level else 0
        sizes = [z_dim + cond_dim, *reversed(hidden)]
        if arch in ("conv", "resnet"):
            levels = conv_levels(size)
            widths = list(reversed(_widths(len(levels) - 1, width)))
            deepest = (widths[0], *levels[-1])
            layers: list[nn.Module] = [
                mlp([*sizes, math.prod(deepest)]),
                nn.ReLU(),
                nn.Unflatten(1, deepest),
            ]
            planes = [*widths, out_channels]
            steps = list(reversed(levels))
            for i, (n_in, n_out) in enumerate(zip(planes[:-1], planes[1:])):
                if arch == "resnet":
                    layers.append(Residual(n_in))
                (h, w), (h2, w2) = steps[i], steps[i + 1]
                extra = (h2 - 2 * h, w2 - 2 * w)  # 1 where halving rounded an odd side down
                layers.append(
                    nn.ConvTranspose2d(n_in + planes_in, n_out, 4, 2, 1, output_padding=extra)
                )
                if i < len(planes) - 2:
                    layers.append(nn.ReLU())
            self.layers = nn.Sequential(*layers, nn.Flatten())
        else:
            self.layers = mlp([*sizes, out_channels * math.prod(size)])

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """`z` may carry leading particle dimensions `[K, N, z_dim]`; `cond` `[N, cond_dim]`
        is then shared by every particle. Returns `[*z.shape[:-1], out_channels * H * W]`."""
        if cond.shape[-1]:
            z = torch.cat([z, cond.expand(*z.shape[:-1], cond.shape[-1])], dim=-1)
        flat = z.reshape(-1, z.shape[-1])
        if not self.cond_every_level:
            return self.layers(flat).reshape(*z.shape[:-1], -1)
        codes = flat[:, flat.shape[-1] - cond.shape[-1] :, None, None]  # [K * N, cond_dim, 1, 1]
        h = flat
        for layer in self.layers:
            if isinstance(layer, nn.ConvTranspose2d):
                h = torch.cat([h, codes.expand(-1, -1, *h.shape[2:])], dim=1)
            h = layer(h)
        return h.reshape(*z.shape[:-1], -1)
