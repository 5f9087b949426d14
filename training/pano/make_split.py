"""Writes training/pano/split.json: a fixed, seeded train/val split of UFBA-425 by image.

Stratified by the set's category prefix (file names `cateN-xxxxx`, the UFBA groups such as
implants, restorations, missing teeth): within each category images are shuffled with the seed,
then every sixth image of the concatenated list goes to validation (60 of 360).
Run: .venv/bin/python -m training.pano.make_split
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from training.pano.data import DEFAULT_DATA, SPLIT_PATH, load_coco


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=425)
    args = parser.parse_args()
    coco = load_coco(args.data)
    rng = random.Random(args.seed)
    groups: dict[str, list[dict]] = {}
    for im in sorted(coco["images"], key=lambda i: i["id"]):
        groups.setdefault(im["file_name"].split("-")[0], []).append(im)
    ordered = []
    for name in sorted(groups):
        members = groups[name][:]
        rng.shuffle(members)
        ordered.extend(members)
    val = sorted(im["id"] for k, im in enumerate(ordered) if k % 6 == 5)
    train = sorted(im["id"] for k, im in enumerate(ordered) if k % 6 != 5)
    SPLIT_PATH.write_text(json.dumps({
        "dataset": "pano/ufba425",
        "method": "python -m training.pano.make_split --seed 425: images grouped by file-name category "
        "(cateN), each group shuffled with random.Random(seed), groups concatenated in name order, "
        "every 6th image to val",
        "seed": args.seed,
        "train": train,
        "val": val,
    }, indent=1) + "\n")
    print(f"train {len(train)}  val {len(val)} -> {SPLIT_PATH}")


if __name__ == "__main__":
    main()
