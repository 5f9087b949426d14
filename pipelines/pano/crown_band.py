"""Where on a dental crop a crown-lesion model (caries) needs to look: tiles over the crowns.

Caries is a lesion of the crown and of the root surface next to it, so a caries model need not read
the roots and the bone that make up about half of the dental crop. The crop (work frame) is cut into
vertical strips; each strip's tile spans the crowns of the teeth in it (the occlusal CROWN_SHARE of
each tooth's box: the bottom of an upper tooth, the top of a lower one) plus BAND_MARGIN, and
reads TILE_CONTEXT more columns on each side than it keeps, so that a lesion on a strip's edge is
seen with its surroundings. Neighbouring strips are read as one tile when that is not larger.
On the 80 DC1000 films (their teeth from pano-teeth) the strips' bands cover 51 % of the crop and
every labelled lesion (99.96 % of the lesion pixels) at CROWN_SHARE 0.4, strips of 128 and margin
32; the tiles, with their context columns, read 60 % of it (about two tiles a film).
Pure geometry (numpy): the findings module runs the model on each tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Share of a tooth's box height taken as its crown, from its occlusal end.
CROWN_SHARE = 0.4
# Strip width, rows above and below the crowns, and columns read on each side beyond the strip
# (work px; multiples of the networks' stride, 8, so that tiles keep the crop's pixel grid).
STRIP = 128
BAND_MARGIN = 32
TILE_CONTEXT = 16


@dataclass(frozen=True)
class Tile:
    """A window of the work frame the model reads, and the columns of it that it keeps."""

    y0: int
    y1: int
    x0: int
    x1: int
    keep_x0: int
    keep_x1: int

    @property
    def area(self) -> int:
        return (self.y1 - self.y0) * (self.x1 - self.x0)


def crowns(boxes: np.ndarray, upper: np.ndarray, share: float = CROWN_SHARE) -> np.ndarray:
    """(N, 4) crown boxes x0, y0, x1, y1 from tooth boxes (same layout) and their jaw."""
    out = np.asarray(boxes, np.float64).copy()
    h = out[:, 3] - out[:, 1]
    out[:, 1] = np.where(upper, out[:, 3] - share * h, out[:, 1])
    out[:, 3] = np.where(upper, out[:, 3], out[:, 1] + share * h)
    return out


def crown_tiles(boxes: Sequence[Sequence[float]], upper: Sequence[bool], height: int, width: int,
                stride: int = 8) -> list[Tile]:
    """Tiles of a `height` x `width` work frame (multiples of `stride`) over the crowns of teeth with
    these boxes (x0, y0, x1, y1, work px) and jaws (True: upper)."""
    if not len(boxes):
        return []
    crown = crowns(np.asarray(boxes, np.float64), np.asarray(upper, bool))
    tiles: list[Tile] = []
    for sx in range(0, width, STRIP):
        ex = min(sx + STRIP, width)
        inside = (crown[:, 0] < ex) & (crown[:, 2] > sx)
        if not inside.any():
            continue
        y0 = max(int(np.floor((crown[inside, 1].min() - BAND_MARGIN) / stride)) * stride, 0)
        y1 = min(int(np.ceil((crown[inside, 3].max() + BAND_MARGIN) / stride)) * stride, height)
        y1 = max(y1, min(y0 + 2 * stride, height))  # the networks need a few rows
        tile = Tile(y0, y1, max(sx - TILE_CONTEXT, 0), min(ex + TILE_CONTEXT, width), sx, ex)
        last = tiles[-1] if tiles else None
        if last is not None and last.keep_x1 == sx:
            merged = Tile(min(last.y0, y0), max(last.y1, y1), last.x0, tile.x1, last.keep_x0, ex)
            if merged.area <= last.area + tile.area:
                tiles[-1] = merged
                continue
        tiles.append(tile)
    return tiles
