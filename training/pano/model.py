"""A light U-Net for 33-class per-pixel tooth segmentation (background + 32 FDI teeth).

Cost is kept low for CPU training: the first stage downsamples at once, the full-resolution
path has few channels, and logits are bilinearly upsampled from half resolution.
Five downsamplings give the receptive field needed to tell, say, 14 from 15 by its position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn(cin, cout, stride=2), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn(cin + cskip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class TeethUNet(nn.Module):
    def __init__(self, num_classes: int = 33, widths: tuple[int, ...] = (16, 32, 64, 96, 128, 160)) -> None:
        super().__init__()
        w = widths
        self.stem = nn.Sequential(conv_bn(1, w[0], stride=2), conv_bn(w[0], w[0]))  # 1/2
        self.downs = nn.ModuleList(Down(w[i], w[i + 1]) for i in range(len(w) - 1))  # 1/4 .. 1/64
        # Dilated context at the bottom: whole-jaw context for numbering.
        self.context = nn.Sequential(conv_bn(w[-1], w[-1], dilation=2), conv_bn(w[-1], w[-1], dilation=2))
        self.ups = nn.ModuleList(Up(w[i + 1], w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = self.context(skips.pop())
        for up in self.ups:
            y = up(y, skips.pop())
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
