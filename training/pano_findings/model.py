"""A small U-Net for lesion masks in the findings frame (work px): three poolings, 0.12 M parameters.

Fully convolutional: the service feeds the whole dental crop (about 370 x 780 work px), training
feeds patches. Few channels at full resolution keep a film under ~0.15 s on one CPU thread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class FindingsUNet(nn.Module):
    def __init__(self, num_outputs: int = 1, widths: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(block(cin, w))
            cin = w
        self.up = nn.ModuleList(block(widths[k + 1] + widths[k], widths[k]) for k in range(len(widths) - 1))
        self.head = nn.Conv2d(widths[0], num_outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, down in enumerate(self.down):
            x = down(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for k in reversed(range(len(self.up))):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = self.up[k](torch.cat([x, skips[k]], 1))
        return self.head(x)
