"""Train the per-tooth refinement model (pipelines/pano/refine.py) on UFBA + Tufts, on CPU, budgeted
by wall time.

    .venv/bin/python -m training.pano_refine.data --dataset ufba425   # caches, once
    .venv/bin/python -m training.pano_refine.data --dataset tufts
    .venv/bin/python -m training.pano_refine.train --max-minutes 95

Each batch is half UFBA teeth, half Tufts teeth (`--tufts-share`; the pano-teeth split,
`training/pano/split*.json`).
A crop is cut with the service's own functions around the tooth's ground-truth box moved edge by
edge as much as the whole-film outlines' boxes are off (`jittered_box`), flipped half the time, with
the film's contrast, gamma, blur or sharpness and noise changed like the whole-film trainer does,
and the whole-film probability roughened (a power and a blur): the whole-film model saw these
training films, so its probability is cleaner here than on a new film. Loss: binary cross-entropy
+ soft Dice per tooth. Validation: the val teeth around boxes that are off in the same way (fixed
per tooth), Dice per tooth of the refined mask and, for comparison, of the whole-film probability
above one half.
Resumable: the same command continues from runs/<run>/last.pt. `--init-onnx models/pano-teeth-refine/
model.onnx` starts a new run from the shipped weights (a fine-tune).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.pano import refine
from training.onnx_import import init_from_folded_onnx
from training.pano_refine.data import RUNS, Part, ToothSample, load
from training.pano_refine.model import RefineUNet
from training.run import Run, lr_at, started_from

HEIGHT, WIDTH = 160, 96  # crop (rows, columns): teeth are tall
# Box error of the whole-film outlines (share of the tooth's width, height): std and limit.
BOX_ERROR = (0.10, 0.07)
BOX_LIMIT = (0.25, 0.18)


def photometric(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] film crop as another device might show it (see training/pano/train.py augment)."""
    x = np.clip(x, 0.0, 1.0) ** np.exp(rng.uniform(-0.45, 0.45))
    x = x * rng.uniform(0.75, 1.3) + rng.uniform(-0.12, 0.12)
    blurred = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.6, 2.0))
    a = rng.uniform(-1.0, 0.0) if rng.random() < 0.5 else rng.uniform(0.0, 1.5)
    x = x + a * (x - blurred)
    x = x + rng.uniform(0.0, 0.05) * rng.standard_normal(x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def jittered_box(box: np.ndarray, rng: np.random.Generator) -> list[float]:
    """The tooth's box with each edge moved as the whole-film outline's box is off on Tufts val
    films (std 10 % of the width at the sides, 7 % of the height at top and bottom)."""
    x0, y0, w, h = (float(v) for v in box)
    dx = np.clip(rng.normal(0.0, BOX_ERROR[0], 2), -BOX_LIMIT[0], BOX_LIMIT[0]) * w
    dy = np.clip(rng.normal(0.0, BOX_ERROR[1], 2), -BOX_LIMIT[1], BOX_LIMIT[1]) * h
    left, right = x0 + dx[0], x0 + w + dx[1]
    top, bottom = y0 + dy[0], y0 + h + dy[1]
    return [left, top, max(right - left, 0.3 * w), max(bottom - top, 0.3 * h)]


def tooth_example(
    film: np.ndarray, t: ToothSample, box_rng: np.random.Generator, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """(2, H, W) input and (H, W) target for one tooth around a box that is off (`box_rng`);
    `rng` None: no other change (validation)."""
    matrix = refine.crop_matrix(jittered_box(t.box, box_rng), WIDTH, HEIGHT)
    frame = refine.Frame(film=film, scale_x=1.0, scale_y=1.0)
    aug = None if rng is None else (lambda c: photometric(c, rng))
    x = refine.crop_inputs(frame, matrix, t.own, t.origin, t.per_model, WIDTH, HEIGHT, aug)
    pts = (t.polygon - matrix[:, 2]) / [matrix[0, 0], matrix[1, 1]]
    y = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.fillPoly(y, [np.round(pts * 8).astype(np.int32)], 1, shift=3)
    if rng is not None:
        prior = np.clip(x[1], 0.0, 1.0) ** np.exp(rng.uniform(-0.5, 0.5))
        if rng.random() < 0.5:
            prior = cv2.GaussianBlur(prior, (0, 0), rng.uniform(0.5, 2.5))
        x[1] = prior
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1].copy(), y[:, ::-1].copy()
    return x, y.astype(np.float32)


def batch_of(
    parts: list[Part], picks: list[tuple[int, int]], rng: np.random.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (part, tooth) picks; `rng` None: validation, each tooth's box error fixed by its index."""
    def one(p: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        t = parts[p].teeth[i]
        return tooth_example(parts[p].films[t.image], t, rng or np.random.default_rng(i), rng)

    xs, ys = zip(*(one(p, i) for p, i in picks), strict=True)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))[:, None]


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * y).sum((1, 2, 3))
    dice = (2 * inter + 1) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, y) + (1 - dice).mean()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@torch.no_grad()
def validate(model: RefineUNet, part: Part, picks: list[int]) -> dict[str, float]:
    model.eval()
    refined, prior = [], []
    for i in range(0, len(picks), 64):
        x, y = batch_of([part], [(0, k) for k in picks[i : i + 64]], None)
        masks = (model(x) > 0).numpy()[:, 0]
        gt = y.numpy()[:, 0] > 0.5
        for m, p, g in zip(masks, x.numpy()[:, 1] > 0.5, gt, strict=True):
            refined.append(dice(m, g))
            prior.append(dice(p, g))
    model.train()
    return {"dice": float(np.mean(refined)), "prior_dice": float(np.mean(prior))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="refine-160x96")
    parser.add_argument("--max-minutes", type=float, default=95.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--val-teeth", type=int, default=600,
                        help="val teeth per set each epoch (evenly spaced)")
    parser.add_argument("--tufts-share", type=float, default=0.5,
                        help="share of each batch drawn from Tufts teeth, the rest UFBA")
    parser.add_argument("--init-onnx", type=Path, default=None,
                        help="start from an exported model of this architecture (a new run only)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    run = Run(args.run, RUNS, higher_is_better=True)
    t0 = time.time()
    names = ("ufba425", "tufts")
    train = [load(n, "train") for n in names]
    val = [load(n, "val") for n in names]
    for part in (*train, *val):  # the frame film as the service has it (float32 [0, 1])
        part.films = [f.astype(np.float32) / 255.0 for f in part.films]
    val_picks = [list(range(0, len(v.teeth), max(1, len(v.teeth) // args.val_teeth)))[: args.val_teeth]
                 for v in val]
    run.say(f"loaded train {[len(p.teeth) for p in train]} teeth, val {[len(p.teeth) for p in val]} "
            f"in {time.time() - t0:.0f}s")

    model = RefineUNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    epoch, spent, best = run.resume(model, opt)
    if epoch == 0 and args.init_onnx is not None:
        # Batch norms re-split on training crops (training.onnx_import); then trained as usual.
        picks = [(p, int(i)) for p in (0, 1) for i in np.random.default_rng(args.seed - 1).integers(
            0, len(train[p].teeth), args.batch // 2)]
        init_from_folded_onnx(model, args.init_onnx, batch_of(train, picks, None)[0])
        run.say(f"initialised from {args.init_onnx}")
    # What export writes into the manifest: the command that made the model and what it started from.
    command = " ".join([".venv/bin/python -m training.pano_refine.train", *sys.argv[1:]])
    recorded = vars(args) | {"command": command, "started_from": started_from(args.init_onnx),
                             "init_onnx": str(args.init_onnx) if args.init_onnx else None}
    budget = args.max_minutes * 60
    n_ufba = args.batch - round(args.batch * args.tufts_share)
    model.train()
    while spent < budget:
        rng = np.random.default_rng(args.seed * 1000 + epoch)
        start, losses = time.time(), []
        for _ in range(args.steps_per_epoch):
            elapsed = spent + time.time() - start
            if elapsed >= budget:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(args.lr, elapsed / budget)
            picks = [(p, int(i)) for p in (0, 1) for i in rng.integers(
                0, len(train[p].teeth), n_ufba if p == 0 else args.batch - n_ufba)]
            x, y = batch_of(train, picks, rng)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        spent += time.time() - start
        epoch += 1
        metrics = {}
        for name, part, picks in zip(names, val, val_picks, strict=True):
            metrics |= {f"{name}_{k}": v for k, v in validate(model, part, picks).items()}
        # Model choice (best.pt) on the mean of the two sites' crop Dice.
        score = 0.5 * (metrics["ufba425_dice"] + metrics["tufts_dice"])
        improved = score > best
        best = run.save(model, opt, epoch, spent, score, best, recorded)
        row = {"epoch": epoch, "elapsed_min": round(spent / 60, 2),
               "loss": round(float(np.mean(losses)) if losses else float("nan"), 4)} | {
               k: round(v, 4) for k, v in metrics.items()}
        with (run.dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        run.say(json.dumps(row) + (" *best" if improved else ""))
    run.say(f"finished: epochs {epoch}, {spent / 60:.1f} min, best {best:.4f}")


if __name__ == "__main__":
    main()
