"""Writes the fixed, seeded train/val splits by image of the pano sets.

UFBA-425 -> training/pano/split.json (seed 425, 300 train / 60 val): stratified by the set's
category prefix (file names `cateN-xxxxx`, the UFBA groups such as implants, restorations, missing
teeth): within each category images are shuffled with the seed, then every sixth image of the
concatenated list goes to validation.

Tufts -> training/pano/split_tufts.json (seed 700, 600 train / 100 val): stratified the same way by
dentition, so that children's films with primary teeth (51-85) are in both parts: images grouped
into `mixed` (at least one primary tooth) and `permanent`, each group shuffled, every seventh image
of the concatenated list to validation.

Run: .venv/bin/python -m training.pano.make_split [--dataset tufts]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

from pipelines.pano.numbering import is_primary
from training.pano.data import DEFAULT_DATA, SPLIT_PATH, TUFTS_DATA, TUFTS_SPLIT_PATH, load_coco


def stratified(coco: dict, group_of: Callable[[dict], str], seed: int, every: int) -> tuple[list, list]:
    """Every `every`-th image of the seeded, group-wise shuffled list to val; ids sorted."""
    rng = random.Random(seed)
    groups: dict[str, list[dict]] = {}
    for im in sorted(coco["images"], key=lambda i: i["id"]):
        groups.setdefault(group_of(im), []).append(im)
    ordered = []
    for name in sorted(groups):
        members = groups[name][:]
        rng.shuffle(members)
        ordered.extend(members)
    val = sorted(im["id"] for k, im in enumerate(ordered) if k % every == every - 1)
    train = sorted(im["id"] for k, im in enumerate(ordered) if k % every != every - 1)
    return train, val


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=["ufba", "tufts"], default="ufba")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.dataset == "ufba":
        seed = 425 if args.seed is None else args.seed
        coco = load_coco(args.data or DEFAULT_DATA)
        train, val = stratified(coco, lambda im: im["file_name"].split("-")[0], seed, 6)
        out, extra = SPLIT_PATH, {
            "dataset": "pano/ufba425",
            "method": "python -m training.pano.make_split --seed 425: images grouped by file-name category "
            "(cateN), each group shuffled with random.Random(seed), groups concatenated in name order, "
            "every 6th image to val",
        }
    else:
        seed = 700 if args.seed is None else args.seed
        coco = load_coco(args.data or TUFTS_DATA)
        mixed = {a["image_id"] for a in coco["annotations"] if is_primary(a["category_id"])}
        train, val = stratified(coco, lambda im: "mixed" if im["id"] in mixed else "permanent", seed, 7)
        out, extra = TUFTS_SPLIT_PATH, {
            "dataset": "pano/tufts",
            "method": "python -m training.pano.make_split --dataset tufts --seed 700: images grouped into "
            "'mixed' (at least one primary tooth 51-85) and 'permanent', each group shuffled with "
            "random.Random(seed), groups concatenated in name order, every 7th image to val",
            "val_with_primary": sorted(set(val) & mixed),
            "train_with_primary": len(set(train) & mixed),
        }
    out.write_text(json.dumps(extra | {"seed": seed, "train": train, "val": val}, indent=1) + "\n")
    print(f"train {len(train)}  val {len(val)} -> {out}")


if __name__ == "__main__":
    main()
