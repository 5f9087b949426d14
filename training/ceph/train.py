"""Train the ceph landmark heatmap model on a wall-clock budget, then export it to models/ceph-landmarks/.

    .venv/bin/python -m training.ceph.train --max-minutes 28

Resumable: run the same command again and it continues from runs/<name>/last.pt (the time already
spent counts against --max-minutes). The learning rate follows a cosine over the time budget.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pipelines.ceph.decode import decode_heatmaps
from pipelines.ceph.preprocess import HEATMAP_STRIDE
from training.ceph.data import (
    CACHE_H,
    CACHE_W,
    RUNS,
    Sample,
    heatmap_targets,
    load_hamedan,
    load_isbi,
    make_sample,
)
from training.ceph.model import LandmarkUNet
from training.run import Run, lr_at

# ISBI 640x800 spacing; cache pixels are 640/CACHE_W larger.
MM_X, MM_Y = 0.3023 * 640 / CACHE_W, 0.3 * 800 / CACHE_H


def evaluate(model: torch.nn.Module, val: list[Sample]) -> tuple[float, float]:
    """MRE (mm) and SDR@2mm on ISBI val, with the same decoding the pipeline uses."""
    model.eval()
    errs = []
    with torch.no_grad():
        for i in range(0, len(val), 10):
            batch = val[i : i + 10]
            xs = np.stack([make_sample(s, None)[0] for s in batch])
            hms = model(torch.from_numpy(xs)).numpy()
            for s, hm in zip(batch, hms, strict=True):
                c, _ = decode_heatmaps(hm)
                model_px = (c + 0.5) * HEATMAP_STRIDE - 0.5
                cache = (model_px + 0.5) * [
                    CACHE_W / hm.shape[2] / HEATMAP_STRIDE,
                    CACHE_H / hm.shape[1] / HEATMAP_STRIDE,
                ] - 0.5
                d = (cache - s.points) * [MM_X, MM_Y]
                errs.append(np.hypot(d[:, 0], d[:, 1]))
    e = np.concatenate(errs)
    model.train()
    return float(e.mean()), float((e <= 2.0).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-minutes", type=float, default=25.0)
    ap.add_argument("--name", default="unet-256x320")
    ap.add_argument(
        "--hamedan-per-epoch", type=int, default=50, help="Hamedan images mixed into each epoch (0: none)"
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--sigma", type=float, default=2.0, help="target Gaussian sigma in heatmap pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # shares the 2-core machine with another training
    torch.manual_seed(args.seed)
    run = Run(args.name, RUNS)
    say = run.say
    train, val = load_isbi("train"), load_isbi("val")
    hamedan = load_hamedan() if args.hamedan_per_epoch > 0 else []
    say(f"data: isbi train {len(train)}, isbi val {len(val)}, hamedan {len(hamedan)}; args {vars(args)}")
    model = LandmarkUNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    epoch, elapsed, best = run.resume(model, opt)
    budget = args.max_minutes * 60
    while elapsed < budget:
        t0 = time.time()
        rng = np.random.default_rng(args.seed * 100003 + epoch)
        pool = train + [hamedan[i] for i in rng.permutation(len(hamedan))[: args.hamedan_per_epoch]]
        order = rng.permutation(len(pool))
        losses = []
        for b in range(0, len(order) - args.batch + 1, args.batch):
            frac = min(1.0, (elapsed + time.time() - t0) / budget)
            lr = lr_at(args.lr, frac)
            for g in opt.param_groups:
                g["lr"] = lr
            xs, ys = [], []
            for i in order[b : b + args.batch]:
                x, p = make_sample(pool[i], rng)
                xs.append(x)
                ys.append(heatmap_targets(p, args.sigma))
            x_t, y_t = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
            out = model(x_t)
            # Weighted MSE: the few pixels near a landmark matter most.
            loss = ((out - y_t) ** 2 * (1 + 20 * y_t)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        mre, sdr2 = evaluate(model, val)
        elapsed += time.time() - t0
        epoch += 1
        best = run.save(model, opt, epoch, elapsed, mre, best, vars(args))
        say(
            f"epoch {epoch} loss {np.mean(losses):.5f} lr {lr:.2e} "
            f"val MRE {mre:.3f} mm SDR@2mm {100 * sdr2:.1f}% "
            f"({elapsed / 60:.1f}/{args.max_minutes:.0f} min)"
        )
    (run.dir / "summary.json").write_text(
        json.dumps({"epochs": epoch, "wall_minutes": round(elapsed / 60, 1), "best_val_mre": best}, indent=1)
    )
    if not args.no_export:
        from training.ceph import export

        export.export(run.dir / "last.pt", wall_minutes=elapsed / 60)
        say("exported models/ceph-landmarks/")


if __name__ == "__main__":
    main()
