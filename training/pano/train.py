"""Train the pano tooth segmentation model on CPU, budgeted by wall time.

    .venv/bin/python -m training.pano.train --max-minutes 65

Resumable: the same command continues from runs/<run>/last.pt (saved every epoch). The learning
rate follows a cosine over the time budget, so a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.pano.numbering import CLASS_FDI, mirror_fdi
from training.pano.data import DEFAULT_DATA, load_split, read_split
from training.pano.model import TeethUNet

RUNS = Path(__file__).resolve().parent / "runs"
NUM_CLASSES = len(CLASS_FDI)
# Label lookup for a horizontal flip: the patient's right becomes the image's right.
FLIP_LUT = torch.tensor([0] + [CLASS_FDI.index(mirror_fdi(f)) for f in CLASS_FDI[1:]], dtype=torch.long)


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Small affine (scale, shift, rotation), flip with FDI side swap, contrast/brightness/noise."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    scale, angle = u(0.9, 1.1), u(-5, 5) * math.pi / 180
    tx, ty = u(-0.06, 0.06), u(-0.08, 0.08)
    flip = torch.rand(n, generator=gen) < 0.5
    sx = torch.where(flip, -1.0, 1.0) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sx * torch.cos(angle)
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    yl = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    y = yl[:, 0].long()
    y[flip] = FLIP_LUT[y[flip]]
    gain = u(0.8, 1.25).view(n, 1, 1, 1)
    bias = u(-0.2, 0.2).view(n, 1, 1, 1)
    gamma_like = u(-0.1, 0.1).view(n, 1, 1, 1)  # mild non-linear contrast change
    x = x * gain + bias + gamma_like * x * x.abs()
    x = x + 0.05 * torch.randn(x.shape, generator=gen)
    return x, y


def dice_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Soft Dice over foreground classes present in the batch (absent teeth are handled by CE)."""
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(y, NUM_CLASSES).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + 1) / (denom + 1)
    return 1 - dice[present].mean()


@torch.no_grad()
def evaluate(model: TeethUNet, xs: torch.Tensor, ys: torch.Tensor) -> dict[str, float]:
    """Mean per-tooth Dice (each GT tooth in each image), foreground pixel accuracy, background IoU."""
    model.eval()
    dices, correct, fg = [], 0, 0
    for i in range(0, len(xs), 8):
        pred = model(xs[i : i + 8]).argmax(1)
        gt = ys[i : i + 8].long()
        for p, g in zip(pred, gt, strict=True):
            for c in g.unique().tolist():
                if c == 0:
                    continue
                pc, gc = p == c, g == c
                dices.append(2 * (pc & gc).sum().item() / (pc.sum() + gc.sum()).item())
        correct += ((pred == gt) & (gt > 0)).sum().item()
        fg += (gt > 0).sum().item()
    model.train()
    return {"val_tooth_dice": float(np.mean(dices)), "val_fg_pixel_acc": correct / max(fg, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--run", default="unet-256x512")
    parser.add_argument("--max-minutes", type=float, default=65.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run_dir = RUNS / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "train.log").open("a")

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    split = read_split()
    t0 = time.time()
    xtr, ytr = (torch.from_numpy(a) for a in load_split(args.data, split["train"]))
    xva, yva = (torch.from_numpy(a) for a in load_split(args.data, split["val"]))
    say(f"loaded train {tuple(xtr.shape)} val {tuple(xva.shape)} in {time.time() - t0:.0f}s")

    model = TeethUNet(NUM_CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    state = {"epoch": 0, "elapsed_s": 0.0, "best": -1.0}
    last = run_dir / "last.pt"
    if last.exists():
        ckpt = torch.load(last, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        state = ckpt["state"]
        say(f"resumed at epoch {state['epoch']} elapsed {state['elapsed_s'] / 60:.1f} min")
    budget = args.max_minutes * 60
    warmup = 60.0

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "args": vars(args) | {"data": str(args.data)}}, path)

    model.train()
    done = state["elapsed_s"] >= budget
    while not done:
        epoch = state["epoch"]
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(xtr), generator=gen)
        losses = []
        t_epoch = time.time()
        elapsed_at_start = state["elapsed_s"]
        for i in range(0, len(order) - args.batch + 1, args.batch):
            elapsed = elapsed_at_start + (time.time() - t_epoch)
            if elapsed >= budget:
                done = True
                break
            frac = elapsed / budget
            lr = args.lr * min(1.0, (elapsed + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[i : i + args.batch]
            x, y = augment(xtr[idx], ytr[idx].long(), gen)
            logits = model(x)
            loss = F.cross_entropy(logits, y) + dice_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        state["elapsed_s"] = elapsed_at_start + (time.time() - t_epoch)
        metrics = evaluate(model, xva, yva)
        state["epoch"] = epoch + 1
        improved = metrics["val_tooth_dice"] > state["best"]
        if improved:
            state["best"] = metrics["val_tooth_dice"]
        save(last)
        if improved:
            save(run_dir / "best.pt")
        row = {"epoch": epoch + 1, "elapsed_min": round(state["elapsed_s"] / 60, 2),
               "loss": round(float(np.mean(losses)) if losses else float("nan"), 4), "lr": lr} | {
               k: round(v, 4) for k, v in metrics.items()}
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        say(json.dumps(row) + (" *best" if improved else ""))
    say(f"finished: epochs {state['epoch']}, {state['elapsed_s'] / 60:.1f} min, "
        f"best val_tooth_dice {state['best']:.4f}")


if __name__ == "__main__":
    main()
