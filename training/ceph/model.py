"""A light U-Net: stride-2 stem, four downsamplings to 1/32 for global context, heatmaps at 1/2."""

from __future__ import annotations

import torch
from torch import nn


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class LandmarkUNet(nn.Module):
    def __init__(self, num_landmarks: int = 19, widths: tuple[int, ...] = (16, 32, 48, 96, 128)) -> None:
        super().__init__()
        w = widths
        self.stem = nn.Sequential(
            nn.Conv2d(1, w[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
            nn.Conv2d(w[0], w[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
        )
        self.downs = nn.ModuleList(block(w[i], w[i + 1]) for i in range(len(w) - 1))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(block(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], num_landmarks, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        y = skips.pop()
        for up in self.ups:
            skip = skips.pop()
            y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], 1))
        return self.head(y)
