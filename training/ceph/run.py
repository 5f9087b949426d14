"""What both ceph trainers share: the run folder with its log, resuming, checkpoints and the
learning-rate schedule over a wall-clock budget."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

RUNS = Path(__file__).resolve().parent / "runs"


def lr_at(base: float, frac: float) -> float:
    """Warm-up over the first 3 % of the budget, then a cosine to zero at its end."""
    return base * min(1.0, (frac + 1e-3) / 0.03) * 0.5 * (1 + math.cos(math.pi * frac))


class Run:
    """runs/<name>/: log.txt, last.pt (everything to resume) and best.pt (weights of the best epoch)."""

    def __init__(self, name: str) -> None:
        self.dir = RUNS / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.dir / "log.txt").open("a")

    def say(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def resume(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float, float]:
        """-> epoch, seconds spent and best validation MRE so far (0, 0, inf for a new run)."""
        if not (self.dir / "last.pt").exists():
            return 0, 0.0, math.inf
        ck = torch.load(self.dir / "last.pt", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        self.say(f"resumed at epoch {ck['epoch']}, {ck['elapsed_s'] / 60:.1f} min spent")
        return ck["epoch"], ck["elapsed_s"], ck["best_mre"]

    def save(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        elapsed: float,
        val_mre: float,
        best: float,
        args: dict,
    ) -> float:
        """Write last.pt (and best.pt when `val_mre` beats `best`); -> the new best."""
        if val_mre < best:
            best = val_mre
            weights = {"model": model.state_dict(), "epoch": epoch, "val_mre": val_mre}
            torch.save(weights, self.dir / "best.pt")
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "elapsed_s": elapsed}
        torch.save(state | {"best_mre": best, "val_mre": val_mre, "args": args}, self.dir / "last.pt")
        return best
