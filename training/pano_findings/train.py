"""Train a findings model (caries or periapical) on CPU (one thread), budgeted by wall time.

    .venv/bin/python -m training.pano_findings.train --finding caries --max-minutes 118
    .venv/bin/python -m training.pano_findings.train --finding periapical --max-minutes 92

Resumable: the same command continues from runs/<run>/last.pt (saved every epoch); the learning rate
follows a cosine over the time budget. Data (training/pano_findings/data.py): caries, the DC1000
films of training/pano_findings/split.json cropped to the teeth found by models/pano-teeth;
periapical, the Tufts films of training/pano/split_tufts.json cropped to their annotated teeth.

Patches (128 x 128 work px: 256 x 256 film px of DC1000 for caries, of Tufts for periapical) are
drawn 40 % around a true lesion, 35 % at a random place in the tooth zone (teeth grown by the
recipe's margin, where look-alikes are: enamel overlaps, restorations, cervical burn-out; for
periapical lesions the bone around the apices, sinus and canal), and 25 % at hard negatives: blobs
the model itself predicted on training films where there is no lesion (for periapical also where
its blobs spill past a true lesion, `mine`), mined again every second epoch. Loss: BCE on the soft
(area-resized) mask + soft Dice over the batch.
Each epoch ends with validation on the whole dental crops of the val films (lesion F1 at the best
score threshold with precision >= 0.5, else the best F1); best.pt keeps the best epoch.

Recipe `periapical-pt` (pano-periapical 2.0.0) trains the periapical model as pano-teeth's TeethUNet,
initialised from models/pano-teeth/model.onnx with a new one-channel head, on a short schedule (it
overfits the 118 lesion films within a few epochs):

    .venv/bin/python -m training.pano_findings.train --finding periapical-pt --max-minutes 30
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.pano import findings
from pipelines.pano.evaluation import lesions
from pipelines.pano.evaluation.findings_data import Tufts
from training.onnx_import import init_from_folded_onnx
from training.pano.data import TUFTS_SPLIT_PATH
from training.pano.model import TeethUNet
from training.pano.train import NUM_CLASSES as TEETH_CLASSES
from training.pano.train import init_from_onnx
from training.pano_findings.data import (
    RUNS,
    Film,
    load_film,
    read_split,
    teeth_outlines,
    tufts_film,
)
from training.pano_findings.model import FindingsUNet
from training.run import started_from

ROOT = Path(__file__).resolve().parents[2]
TEETH_ONNX = ROOT / "models" / "pano-teeth" / "model.onnx"

PATCH = 128
STEPS_PER_EPOCH = 100
# Mining with `spill` (see `mine`): work px around a true lesion that may be predicted without being
# mined, and the smallest false-positive area mined.
SPILL_MARGIN = 4
MIN_SPILL = 20
SCORE_GRID = [round(0.3 + 0.05 * k, 2) for k in range(14)]  # 0.30 ... 0.95
SEED = 20261202
MIN_REPORTED = 10


@dataclass(frozen=True)
class Recipe:
    """What differs between the finding types' models."""

    model: str  # directory under models/
    run: str
    widths: tuple[int, ...]  # FindingsUNet widths
    work_width: int  # findings frame (pipelines/pano/findings.py)
    zone_grow: int  # work px around the teeth where random negatives are drawn
    mine_every: int  # epochs between hard-negative mining passes over the training films
    spill: bool  # also mine where predicted blobs spill past a true lesion (`mine`)
    minutes: int  # the --max-minutes of the shipped model's training
    data: str  # for the manifest
    # Input (height, width) the engines are built for: a typical input (a dental crop; for caries a
    # crown tile, median 216 x 288 on the DC1000 films), and at most the whole film (the work width,
    # padded; as tall as the pano check's narrowest aspect, 0.9, allows).
    opt_size: tuple[int, int]
    max_size: tuple[int, int]
    # What the model reads at run time (findings.REGIONS): caries lies on the crowns, so only tiles
    # over them (pipelines/pano/crown_band.py); periapical lesions at the apices, the whole crop.
    region: str
    # Narrowest film (input px) the type is looked for on (FindingType.min_film_width). Caries: the
    # narrowest width where its precision at the shipped thresholds stayed >= 0.5 (eval_findings
    # --film-width); periapical, which never reaches 0.5: its work width (narrower films are upsampled).
    min_film_width: int
    finding: str | None = None  # finding type, when the recipe's name is not it
    backbone: str = "findings-unet"  # or "pano-teeth": TeethUNet initialised from TEETH_ONNX
    patch: int = PATCH  # training patch side (work px)
    backbone_lr: float = 1.0  # lr of the pretrained layers, as a share of --lr (the new head: 1)

    def at_width(self, work_width: int) -> Recipe:
        """The recipe in another findings frame (`train --work-width`); engine sizes scale with it."""
        if work_width == self.work_width:
            return self
        k = work_width / self.work_width

        def size(hw: tuple[int, int]) -> tuple[int, int]:
            h, w = (int(math.ceil(v * k / findings.STRIDE) * findings.STRIDE) for v in hw)
            return h, w

        return replace(self, work_width=work_width, opt_size=size(self.opt_size),
                       max_size=size(self.max_size))


RECIPES = {
    # DC1000's 2943 x 1435 films: dental crops about 370 x 780 work px, about two crown tiles each.
    "caries": Recipe(
        findings.FINDINGS_MODEL, "caries-unet", (8, 16, 32, 64), findings.WORK_WIDTH, 12, 2, False, 118,
        "pano/dc1000_caries, split training/pano_findings/split.json (64 train / 16 val films)",
        (216, 288), (1664, 1536), "crowns", 1000,
    ),
    # Larger lesions read at half a Tufts film (crops about 230 x 400): a wider net for their context,
    # a wider zone for the bone around the apices.
    "periapical": Recipe(
        findings.PERIAPICAL_MODEL, "periapical-unet", (16, 32, 64, 96), findings.PERIAPICAL_WORK_WIDTH,
        20, 2, True, 92, "pano/tufts periapical polygons, split training/pano/split_tufts.json "
        "(600 train / 100 val films)", (232, 400), (896, 800), "teeth", 800,
    ),
    # pano-periapical 2.0.0: the tooth network (2.3 M parameters, ~1,000 films of two sites) as the
    # start. 256-px patches: its bottom is at 1/64, so 128 px leave it 2 x 2 cells, mostly padding,
    # where a crop gives about 4 x 7; 256 is also about a crop's height. Its layers learn at a tenth
    # of the new head's lr, so that 118 lesion films adapt its features rather than overwrite them;
    # 30 minutes (about ten epochs on one thread), as an 86-minute run peaked at epoch 4 and declined.
    "periapical-pt": Recipe(
        findings.PERIAPICAL_MODEL, "periapical-pt-short", (), findings.PERIAPICAL_WORK_WIDTH,
        20, 2, True, 30, "pano/tufts periapical polygons, split training/pano/split_tufts.json "
        "(600 train / 100 val films); start: models/pano-teeth/model.onnx", (232, 400), (896, 800), "teeth",
        800,
        finding="periapical", backbone="pano-teeth", patch=256, backbone_lr=0.1,
    ),
}


def build_model(recipe: Recipe, num_outputs: int = 1) -> nn.Module:
    """The recipe's network, untrained (`init_backbone` loads the pretrained one's weights)."""
    if recipe.backbone == "pano-teeth":
        return TeethUNet(num_outputs)
    return FindingsUNet(num_outputs, recipe.widths)


def init_backbone(model: nn.Module, recipe: Recipe, films: list[Film], rng: np.random.Generator,
                  start: Path | None = None) -> None:
    """pano-teeth's weights (its batch norms folded in the ONNX file, re-split on training patches by
    `init_from_onnx`, so that the network computes pano-teeth's features on them) and a new head;
    or, with `start`, all the weights of an exported model of this recipe (`train --init-onnx`)."""
    if recipe.backbone != "pano-teeth" and start is None:
        return
    x = np.stack([sample(films[int(rng.integers(len(films)))], 1, np.zeros((0, 2)), rng, recipe.patch)[0]
                  for _ in range(32)])
    if start is not None:
        init_from_folded_onnx(model, start, torch.from_numpy(x)[:, None])
        return
    teeth = TeethUNet(TEETH_CLASSES)
    init_from_onnx(teeth, TEETH_ONNX, torch.from_numpy(x)[:, None])
    model.load_state_dict({k: v for k, v in teeth.state_dict().items() if not k.startswith("head.")},
                          strict=False)


def load_films(finding: str, recipe: Recipe) -> tuple[list[Film], list[Film]]:
    """(train, val) films of a finding type in the recipe's frame."""
    finding = recipe.finding or finding
    if finding == "caries":
        split = read_split()
        outlines = teeth_outlines(split["train"] + split["val"])
        return ([load_film(i, outlines[i], recipe.work_width) for i in split["train"]],
                [load_film(i, outlines[i], recipe.work_width) for i in split["val"]])
    tufts = Tufts(finding)
    split = read_split(TUFTS_SPLIT_PATH)
    train, val = ([tufts_film(tufts, i, recipe.work_width, recipe.zone_grow) for i in split[k]]
                  for k in ("train", "val"))
    return train, val


def predict(model: nn.Module, film: Film) -> np.ndarray:
    """Probability map (H, W) of the whole dental crop."""
    with torch.no_grad():
        logits = model(torch.from_numpy(film.x)[None, None])
    return torch.sigmoid(logits)[0, 0].numpy()


def lesion_map(prob: np.ndarray, threshold: float, roi_shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Label map of the blobs findings.find would report at this score threshold."""
    h, w = roi_shape
    labels = np.zeros(prob.shape, np.int32)
    n = 0
    for blob in findings.blobs(prob[:h, :w]):
        if blob.score >= threshold:
            n += 1
            labels[blob.window][blob.mask] = n
    return n, labels


def validate(model: nn.Module, films: list[Film]) -> dict:
    """Work-frame metrics per score threshold (the full-resolution ones come from eval_findings)."""
    model.eval()
    counts = {t: lesions.Counts() for t in SCORE_GRID}
    for film in films:
        prob = predict(model, film)
        gt = film.y > 0.5
        for t in SCORE_GRID:
            n, labels = lesion_map(prob, t, (film.roi.height, film.roi.width))
            counts[t].add(lesions.compare(labels, n, gt))
    rows = {t: {"p": c.precision, "r": c.recall, "f1": c.f1, "dice": c.dice, "n": c.tp + c.fp}
            for t, c in counts.items()}
    # Precision from a handful of reports is noise (periapical epoch 9: 1 of 2): at least MIN_REPORTED.
    ok = [t for t in SCORE_GRID if rows[t]["p"] >= 0.5 and rows[t]["n"] >= MIN_REPORTED]
    best = max(ok, key=lambda t: rows[t]["f1"]) if ok else max(SCORE_GRID, key=lambda t: rows[t]["f1"])
    # Ranking: F1 where precision >= 0.5 is reachable; otherwise F1 - 1 (always below any such epoch).
    return {"threshold": best, **rows[best], "score": rows[best]["f1"] - (0.0 if ok else 1.0),
            "dice_at_0.5": rows[0.5]["dice"]}


def mine(model: nn.Module, films: list[Film], spill: bool = False) -> list[np.ndarray]:
    """Per film, centres (x, y) of false positives: predicted blobs (prob > 0.5) that touch no true
    lesion; with `spill`, also the parts of blobs that reach past a true lesion (by more than
    SPILL_MARGIN px and MIN_SPILL px), which the first rule never mines."""
    model.eval()
    out = []
    for film in films:
        prob = predict(model, film)
        found = (prob > 0.5).astype(np.uint8)
        if spill:
            k = 2 * SPILL_MARGIN + 1
            near = cv2.dilate((film.y > 0.05).astype(np.uint8), np.ones((k, k), np.uint8))
            n, _, stats, centres = cv2.connectedComponentsWithStats(found & (1 - near), connectivity=8)
            big = stats[1:, cv2.CC_STAT_AREA] >= MIN_SPILL
            out.append(centres[1:][big].astype(np.float32))
            continue
        n, comp, _, centres = cv2.connectedComponentsWithStats(found, connectivity=8)
        hit = np.zeros(n, bool)
        hit[np.unique(comp[film.y > 0.05])] = True
        out.append(centres[1:][~hit[1:]].astype(np.float32))
    return out


def sample(
    film: Film, kind: int, hard: np.ndarray, rng: np.random.Generator, patch: int = PATCH
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented patch: kind 0 around a lesion, 1 in the tooth zone, 2 at a hard negative."""
    h, w = film.x.shape
    scale = float(rng.uniform(0.85, 1.2))
    size = int(round(patch * scale))
    if kind == 0 and len(film.lesions):
        cx, cy = film.lesions[rng.integers(len(film.lesions))] + rng.uniform(-0.35, 0.35, 2) * patch
    elif kind == 2 and len(hard):
        cx, cy = hard[rng.integers(len(hard))] + rng.uniform(-0.35, 0.35, 2) * patch
    else:
        ys, xs = np.nonzero(film.zone[::4, ::4])
        k = rng.integers(len(xs))
        cx, cy = xs[k] * 4.0, ys[k] * 4.0
    x0 = int(np.clip(round(cx - size / 2), 0, max(w - size, 0)))
    y0 = int(np.clip(round(cy - size / 2), 0, max(h - size, 0)))
    xp = np.zeros((size, size), np.float32)
    yp = np.zeros((size, size), np.float32)
    crop_x, crop_y = film.x[y0:y0 + size, x0:x0 + size], film.y[y0:y0 + size, x0:x0 + size]
    xp[:crop_x.shape[0], :crop_x.shape[1]] = crop_x
    yp[:crop_y.shape[0], :crop_y.shape[1]] = crop_y
    if size != patch:
        xp = cv2.resize(xp, (patch, patch), interpolation=cv2.INTER_LINEAR)
        yp = cv2.resize(yp, (patch, patch), interpolation=cv2.INTER_LINEAR)
    # Upper and lower crowns face each other: vertical flips are as plausible as horizontal ones.
    if rng.random() < 0.5:
        xp, yp = xp[:, ::-1], yp[:, ::-1]
    if rng.random() < 0.5:
        xp, yp = xp[::-1], yp[::-1]
    # Other exposure and devices: contrast, brightness, a mild curve, noise (on the standardised film).
    xp = xp * rng.uniform(0.8, 1.25) + rng.uniform(-0.25, 0.25)
    xp = xp + rng.uniform(-0.1, 0.1) * (xp ** 2 - 1)
    xp = xp + rng.uniform(0.0, 0.08) * rng.standard_normal(xp.shape).astype(np.float32)
    return np.ascontiguousarray(xp, np.float32), np.ascontiguousarray(yp, np.float32)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--finding", choices=sorted(RECIPES), default="caries")
    parser.add_argument("--max-minutes", type=float, default=90.0)
    parser.add_argument("--run", default=None, help="run directory under runs/ (default: the recipe's)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=SEED,
                        help="initialisation and sampling")
    parser.add_argument("--init-onnx", type=Path, default=None,
                        help="start from this exported model of the recipe (fine-tuning) instead of scratch")
    parser.add_argument("--work-width", type=int, default=None,
                        help="findings frame (film width in work px; default: the recipe's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    recipe = RECIPES[args.finding]
    if args.work_width:
        recipe = recipe.at_width(args.work_width)
    run_dir = RUNS / (args.run or recipe.run)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train, val = load_films(args.finding, recipe)
    with_lesions = np.array([k for k, f in enumerate(train) if len(f.lesions)])
    print(f"{args.finding}: {len(train)} train films ({len(with_lesions)} with lesions), {len(val)} val, "
          f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    model = build_model(recipe)
    # Pretrained layers at recipe.backbone_lr of --lr (param group key "scale"), the new head at --lr;
    # one group when nothing is pretrained (as the runs before, so that they resume).
    groups: list[dict] = [{"params": list(model.parameters())}]
    if recipe.backbone != "findings-unet":
        head = list(model.head.parameters())
        body = [p for p in model.parameters() if all(p is not q for q in head)]
        groups = [{"params": body, "scale": recipe.backbone_lr}, {"params": head}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)
    # The frame travels with the checkpoint, so that export writes the one the model was trained in.
    # So do the command that made it and, when fine-tuned, the model it started from: export writes
    # both into the manifest, which then says how to make the model again.
    state = {"epoch": 0, "elapsed_s": 0.0, "best": -math.inf, "history": [], "work_width": recipe.work_width,
             "command": " ".join([".venv/bin/python -m training.pano_findings.train", *sys.argv[1:]]),
             "started_from": started_from(args.init_onnx)}
    hard: list[np.ndarray] = [np.zeros((0, 2), np.float32) for _ in train]
    last = run_dir / "last.pt"
    if last.is_file():
        ckpt = torch.load(last, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state, hard = ckpt["state"], ckpt["hard"]
        trained_at = state.get("work_width", RECIPES[args.finding].work_width)
        if trained_at != recipe.work_width:
            raise SystemExit(f"{last}: trained at work width {trained_at}, not {recipe.work_width}")
        print(f"resumed at epoch {state['epoch']}, {state['elapsed_s'] / 60:.1f} min", flush=True)
    else:
        init_backbone(model, recipe, train, np.random.default_rng(args.seed - 1), args.init_onnx)
    rng = np.random.default_rng(args.seed + state["epoch"])
    budget = args.max_minutes * 60
    kinds = np.array([0] * 40 + [1] * 35 + [2] * 25)
    while state["elapsed_s"] < budget:
        start = time.perf_counter()
        model.train()
        total = 0.0
        for _ in range(STEPS_PER_EPOCH):
            progress = min(state["elapsed_s"] + time.perf_counter() - start, budget) / budget
            lr = args.lr * min(1.0, progress * 30) * 0.5 * (1 + math.cos(math.pi * progress))
            for group in opt.param_groups:
                group["lr"] = lr * group.get("scale", 1.0)
            picks = rng.integers(len(train), size=args.batch)
            pairs = []
            for i in picks:
                kind = int(rng.choice(kinds))
                if kind == 0 and not len(train[i].lesions):  # most Tufts films have no periapical lesion
                    i = int(rng.choice(with_lesions))
                pairs.append(sample(train[i], kind, hard[i], rng, recipe.patch))
            x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
            y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        state["epoch"] += 1
        if state["epoch"] % recipe.mine_every == 0:
            hard = mine(model, train, recipe.spill)
        metrics = validate(model, val)
        state["elapsed_s"] += time.perf_counter() - start
        row = {"epoch": state["epoch"], "minutes": round(state["elapsed_s"] / 60, 2), "lr": lr,
               "loss": round(total / STEPS_PER_EPOCH, 4), "hard": int(sum(len(h) for h in hard)),
               **{k: round(float(v), 4) for k, v in metrics.items()}}
        state["history"].append(row)
        print(json.dumps(row), flush=True)
        ckpt = {"model": model.state_dict(), "opt": opt.state_dict(), "state": state, "hard": hard}
        if metrics["score"] > state["best"]:
            state["best"] = metrics["score"]
            torch.save({**ckpt, "val": metrics}, run_dir / "best.pt")
        torch.save(ckpt, run_dir / "last.tmp")
        (run_dir / "last.tmp").replace(last)
    print("done", flush=True)


if __name__ == "__main__":
    main()
