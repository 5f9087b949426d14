"""A small U-Net that draws one tooth's mask on its crop (pipelines/pano/refine.py).

Input: 2 channels (film crop, the whole-film model's own-class probability), full-resolution
output. Cost matters: the service runs it on every tooth of a film (about 28), so the widths are
narrow and each decoder level has a single convolution (about 0.14 GMAC per 160 x 96 crop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.pano.model import conv_bn


class RefineUNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 48, 64), in_channels: int = 2) -> None:
        super().__init__()
        w = widths
        self.stem = nn.Sequential(conv_bn(in_channels, w[0]), conv_bn(w[0], w[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(conv_bn(w[i], w[i + 1], stride=2), conv_bn(w[i + 1], w[i + 1]))
            for i in range(len(w) - 1)
        )
        self.ups = nn.ModuleList(conv_bn(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], dim=1))
        return self.head(y)
