"""Train the pano tooth segmentation model (53 classes) on UFBA + Tufts on CPU, budgeted by wall time.

    .venv/bin/python -m training.pano.train --max-minutes 92

Resumable: the same command continues from runs/<run>/last.pt (saved every epoch). The learning
rate follows a cosine over the time budget, so a resumed run ends where an uninterrupted one would.
Each epoch draws the same number of images from each set (`--per-set`), so the smaller UFBA is not
drowned by Tufts; Tufts films with primary teeth are drawn `--primary-weight` times as often.
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

from pipelines.pano.numbering import CLASS_FDI, is_primary, mirror_fdi, successor
from training.onnx_import import init_from_folded_onnx
from training.pano.data import DEFAULT_DATA, TUFTS_DATA, TUFTS_SPLIT_PATH, load_split, read_split
from training.pano.model import TeethUNet

RUNS = Path(__file__).resolve().parent / "runs"
NUM_CLASSES = len(CLASS_FDI)
# Label lookup for a horizontal flip: the patient's right becomes the image's right.
FLIP_LUT = torch.tensor([0] + [CLASS_FDI.index(mirror_fdi(f)) for f in CLASS_FDI[1:]], dtype=torch.long)
PRIMARY_CLASSES = torch.tensor([k for k, f in enumerate(CLASS_FDI) if f and is_primary(f)])


def epoch_order(n_ufba: int, tufts_weights: torch.Tensor, per_set: int, gen: torch.Generator) -> torch.Tensor:
    """Indices into the concatenation [UFBA train, Tufts train]: `per_set` from each set, without
    repeats within a set while it has enough images, shuffled together."""
    def draw(weights: torch.Tensor) -> torch.Tensor:
        repeat = per_set > int((weights > 0).sum())
        return torch.multinomial(weights, per_set, replacement=repeat, generator=gen)

    ufba = draw(torch.ones(n_ufba))
    tufts = n_ufba + draw(tufts_weights)
    both = torch.cat([ufba, tufts])
    return both[torch.randperm(len(both), generator=gen)]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W), reflect padding."""
    r = max(1, math.ceil(2.5 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Other devices and positions: affine (scale/crop, aspect, shift, rotation), flip with FDI side
    swap, then on the [0, 1] film: gamma, contrast/brightness, blur or sharpening, noise; finally the
    per-image standardisation of pipelines/pano/preprocess.py again."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    # scale > 1 zooms in (a crop of the film); independent x/y jitter covers other stretch ratios.
    scale, aspect, angle = u(0.85, 1.25), u(0.9, 1.1), u(-7, 7) * math.pi / 180
    tx, ty = u(-0.08, 0.08), u(-0.1, 0.1)
    flip = torch.rand(n, generator=gen) < 0.5
    sx = torch.where(flip, -1.0, 1.0) / (scale * aspect)
    sy = aspect / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sx * torch.cos(angle)
    theta[:, 0, 1] = -torch.sin(angle) * sy
    theta[:, 1, 0] = torch.sin(angle) * sx.abs()
    theta[:, 1, 1] = torch.cos(angle) * sy
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    yl = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    y = yl[:, 0].long()
    y[flip] = FLIP_LUT[y[flip]]
    # Back to the clipped [0, 1] film (preprocess clips to a percentile window, so min/max are 0/1).
    lo = x.amin((1, 2, 3), keepdim=True)
    hi = x.amax((1, 2, 3), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-6)
    x = x.clamp_min(0) ** torch.exp(u(-0.45, 0.45)).view(n, 1, 1, 1)  # gamma 0.64-1.57
    x = x * u(0.75, 1.3).view(n, 1, 1, 1) + u(-0.12, 0.12).view(n, 1, 1, 1)
    # a < 0 blurs (a = -1: fully blurred), a > 0 sharpens (unsharp mask): soft and crisp devices.
    sigma = float(0.6 + 1.4 * torch.rand(1, generator=gen))
    a = torch.where(torch.rand(n, generator=gen) < 0.5, u(-1.0, 0.0), u(0.0, 1.5)).view(n, 1, 1, 1)
    x = x + a * (x - _blur(x, sigma))
    x = x + u(0.0, 0.05).view(n, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    x = x.clamp(0.0, 1.0)
    x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).clamp_min(1e-6)
    return x, y


def touching_band(y: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels (N, H, W) whose (2 radius + 1)-square window holds two different teeth: the seams
    between neighbouring teeth, where lower incisors merge into one outline at IoU 0.5."""
    k = 2 * radius + 1
    yf = y[:, None].float()
    top = F.max_pool2d(yf, k, 1, radius)
    # Lowest tooth label in the window (background lifted above every class so that it is ignored).
    low = -F.max_pool2d(-torch.where(yf > 0, yf, float(NUM_CLASSES)), k, 1, radius)
    return ((top > 0) & (low < NUM_CLASSES) & (top != low))[:, 0]


def seg_loss(logits: torch.Tensor, y: torch.Tensor, border_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy + soft Dice over the foreground classes present in the batch (absent teeth are
    handled by CE). Per-class sums by index_add instead of a one-hot tensor: 53 classes would make
    that 450 MB per batch of 8. With `border_weight` > 0 the cross-entropy of the seams between
    touching teeth (`touching_band`) counts 1 + border_weight times, as U-Net's separation weights do."""
    logp = F.log_softmax(logits, 1)
    if border_weight > 0:
        w = 1.0 + border_weight * touching_band(y).float()
        ce = (F.nll_loss(logp, y, reduction="none") * w).sum() / w.sum()
    else:
        ce = F.nll_loss(logp, y)
    probs = logp.exp()
    flat = y.flatten()
    inter = torch.zeros(NUM_CLASSES).index_add(0, flat, probs.gather(1, y[:, None]).flatten())
    count = torch.bincount(flat, minlength=NUM_CLASSES).float()
    denom = probs.sum((0, 2, 3)) + count
    dice = (2 * inter + 1) / (denom + 1)
    present = count[1:] > 0
    return ce + 1 - dice[1:][present].mean()


@torch.no_grad()
def init_from_onnx(model: TeethUNet, path: Path, x: torch.Tensor) -> None:
    """Start from an exported pano-teeth model (1.x: 33 channels; 2.x: all 53), same architecture
    (`training.onnx_import`, batch norms calibrated on `x`). The head keeps the channels the file
    has; a primary channel missing there (1.x) starts from its successor's (55 from 15), with a
    lower bias so that it starts rare.
    """
    head_w, head_b = init_from_folded_onnx(model, path, x)
    old = len(head_b)
    if old == NUM_CLASSES:
        return
    model.head.weight.data[:old] = head_w
    model.head.bias.data[:old] = head_b
    for k in range(old, NUM_CLASSES):
        src = CLASS_FDI.index(successor(CLASS_FDI[k]))
        model.head.weight.data[k] = head_w[src]
        model.head.bias.data[k] = head_b[src] - 3.0


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
    parser.add_argument("--tufts", type=Path, default=TUFTS_DATA)
    parser.add_argument("--run", default="unet53-256x512")
    parser.add_argument("--per-set", type=int, default=300, help="images drawn from each set per epoch")
    parser.add_argument("--primary-weight", type=float, default=3.0,
                        help="sampling weight of Tufts films with primary teeth")
    parser.add_argument("--max-minutes", type=float, default=92.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init-onnx", type=Path, default=None,
                        help="start from an exported pano-teeth model.onnx (1.x or 2.x), not random weights")
    parser.add_argument("--border-weight", type=float, default=0.0,
                        help="extra cross-entropy weight on the seams between touching teeth")
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

    t0 = time.time()
    parts = {}
    for name, data, split_path in (("ufba", args.data, None), ("tufts", args.tufts, TUFTS_SPLIT_PATH)):
        split = read_split() if split_path is None else read_split(split_path)
        parts[name] = {k: tuple(torch.from_numpy(a) for a in load_split(data, split[k]))
                       for k in ("train", "val")}
    xtr = torch.cat([parts["ufba"]["train"][0], parts["tufts"]["train"][0]])
    ytr = torch.cat([parts["ufba"]["train"][1], parts["tufts"]["train"][1]])
    n_ufba = len(parts["ufba"]["train"][0])
    has_primary = torch.isin(parts["tufts"]["train"][1].flatten(1), PRIMARY_CLASSES).any(1)
    tufts_weights = torch.where(has_primary, args.primary_weight, 1.0)
    say(f"loaded train ufba {n_ufba} + tufts {len(xtr) - n_ufba} ({int(has_primary.sum())} with primary "
        f"teeth), val ufba {len(parts['ufba']['val'][0])} + tufts {len(parts['tufts']['val'][0])} "
        f"in {time.time() - t0:.0f}s")

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
    elif args.init_onnx is not None:
        init_from_onnx(model, args.init_onnx, xtr[:n_ufba][:: max(1, n_ufba // 16)][:16])
        say(f"initialised from {args.init_onnx}")
    budget = args.max_minutes * 60
    warmup = 60.0

    def save(path: Path) -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state,
                    "args": vars(args) | {"data": str(args.data), "tufts": str(args.tufts)}}, path)

    model.train()
    done = state["elapsed_s"] >= budget
    while not done:
        epoch = state["epoch"]
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = epoch_order(n_ufba, tufts_weights, args.per_set, gen)
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
            loss = seg_loss(logits, y, args.border_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        state["elapsed_s"] = elapsed_at_start + (time.time() - t_epoch)
        metrics = {}
        for name in ("ufba", "tufts"):
            part = evaluate(model, *parts[name]["val"])
            metrics |= {f"{name}_{k}": v for k, v in part.items()}
        # Model choice (best.pt) on the mean of the two sites' per-tooth Dice.
        metrics["val_tooth_dice"] = 0.5 * (metrics["ufba_val_tooth_dice"] + metrics["tufts_val_tooth_dice"])
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
