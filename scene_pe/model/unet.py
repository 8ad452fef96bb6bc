"""MinkowskiNet residual sparse UNet (the Res16UNet family of Choy et al. 2019).

Four stride-2 downsamplings (total stride 16), residual BasicBlocks per stage,
transposed convolutions up with skip concatenation. The named configurations
follow the MinkowskiNet paper's Res16UNet variants:

    name          blocks per stage            channels per stage
    Res16UNet14A  (1, 1, 1, 1, 1, 1, 1, 1)    (32, 64, 128, 256, 128, 128, 96, 96)
    Res16UNet18A  (2, 2, 2, 2, 2, 2, 2, 2)    (32, 64, 128, 256, 128, 128, 96, 96)
    Res16UNet34C  (2, 3, 4, 6, 2, 2, 2, 2)    (32, 64, 128, 256, 256, 128, 96, 96)

plus a smaller ``Res16UNet14S`` (half the channels) for quick CPU runs.
The first four stages are the encoder, the last four the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import MinkowskiEngine as ME
import torch.nn as nn

ARCHITECTURES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "Res16UNet14S": ((1,) * 8, (16, 32, 64, 128, 64, 64, 48, 48)),
    "Res16UNet14A": ((1,) * 8, (32, 64, 128, 256, 128, 128, 96, 96)),
    "Res16UNet18A": ((2,) * 8, (32, 64, 128, 256, 128, 128, 96, 96)),
    "Res16UNet34C": ((2, 3, 4, 6, 2, 2, 2, 2), (32, 64, 128, 256, 256, 128, 96, 96)),
}
STRIDE = 16  # total stride: 4 downsamplings by 2


@dataclass(frozen=True)
class BackboneConfig:
    name: str = "Res16UNet34C"
    stem_channels: int = 32   # channels of the stem convolution
    stem_kernel: int = 5      # a large first kernel sees ~10 cm at 2 cm voxels
    bn_momentum: float = 0.1  # torch convention (weight of the new batch)

    def validate(self) -> None:
        if self.name not in ARCHITECTURES:
            raise ValueError(f"unknown backbone {self.name!r}; valid: {sorted(ARCHITECTURES)}")

    @property
    def out_channels(self) -> int:
        return ARCHITECTURES[self.name][1][-1]


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, momentum: float = 0.1,
                 transpose: bool = False) -> nn.Sequential:
    conv = ME.MinkowskiConvolutionTranspose if transpose else ME.MinkowskiConvolution
    return nn.Sequential(
        conv(cin, cout, kernel_size=kernel, stride=stride, dimension=3, bias=False),
        ME.MinkowskiBatchNorm(cout, momentum=momentum),
        ME.MinkowskiReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3x3 sparse convolutions with a residual connection."""

    def __init__(self, cin: int, cout: int, momentum: float):
        super().__init__()
        self.conv1 = ME.MinkowskiConvolution(cin, cout, kernel_size=3, dimension=3, bias=False)
        self.bn1 = ME.MinkowskiBatchNorm(cout, momentum=momentum)
        self.conv2 = ME.MinkowskiConvolution(cout, cout, kernel_size=3, dimension=3, bias=False)
        self.bn2 = ME.MinkowskiBatchNorm(cout, momentum=momentum)
        self.relu = ME.MinkowskiReLU(inplace=True)
        self.shortcut = None
        if cin != cout:
            self.shortcut = nn.Sequential(
                ME.MinkowskiConvolution(cin, cout, kernel_size=1, dimension=3, bias=False),
                ME.MinkowskiBatchNorm(cout, momentum=momentum),
            )

    def forward(self, x: ME.SparseTensor) -> ME.SparseTensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + skip)


def stage(cin: int, cout: int, blocks: int, momentum: float) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, momentum) for i in range(blocks)])


class Res16UNet(nn.Module):
    """Sparse residual UNet; ``forward`` returns per-voxel features (same coordinates as input)."""

    def __init__(self, in_channels: int, cfg: BackboneConfig):
        super().__init__()
        blocks, planes = ARCHITECTURES[cfg.name]
        m = cfg.bn_momentum
        self.stem = conv_bn_relu(in_channels, cfg.stem_channels, cfg.stem_kernel, momentum=m)
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        cin = cfg.stem_channels
        skips = [cin]
        for i in range(4):
            self.down.append(conv_bn_relu(cin, cin, kernel=2, stride=2, momentum=m))
            self.encoder.append(stage(cin, planes[i], blocks[i], m))
            cin = planes[i]
            skips.append(cin)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(4, 8):
            self.up.append(conv_bn_relu(cin, planes[i], kernel=2, stride=2, momentum=m, transpose=True))
            skip = skips[7 - i]  # encoder output at the matching resolution
            self.decoder.append(stage(planes[i] + skip, planes[i], blocks[i], m))
            cin = planes[i]
        self.out_channels = cin

    def forward(self, x: ME.SparseTensor) -> ME.SparseTensor:
        out = self.stem(x)
        skips = [out]
        for down, enc in zip(self.down, self.encoder):
            out = enc(down(out))
            skips.append(out)
        skips.pop()  # the bottleneck itself is not concatenated
        for up, dec in zip(self.up, self.decoder):
            out = dec(ME.cat(up(out), skips.pop()))
        return out
