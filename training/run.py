"""What the trainers share: the run folder with its log, resuming, checkpoints and the
learning-rate schedule over a wall-clock budget."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch


def lr_at(base: float, frac: float) -> float:
    """Warm-up over the first 3 % of the budget, then a cosine to zero at its end."""
    return base * min(1.0, (frac + 1e-3) / 0.03) * 0.5 * (1 + math.cos(math.pi * frac))


class Run:
    """<runs>/<name>/: log.txt, last.pt (everything to resume) and best.pt (weights of the best
    epoch by the validation figure, lower or higher is better as `higher_is_better` says)."""

    def __init__(self, name: str, runs: Path, higher_is_better: bool = False) -> None:
        self.dir = runs / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.higher_is_better = higher_is_better
        self._log = (self.dir / "log.txt").open("a")

    def say(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def resume(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float, float]:
        """-> epoch, seconds spent and the best validation figure so far (0, 0 and the worst
        possible figure for a new run)."""
        if not (self.dir / "last.pt").exists():
            return 0, 0.0, -math.inf if self.higher_is_better else math.inf
        ck = torch.load(self.dir / "last.pt", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        self.say(f"resumed at epoch {ck['epoch']}, {ck['elapsed_s'] / 60:.1f} min spent")
        return ck["epoch"], ck["elapsed_s"], ck["best"]

    def save(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        epoch: int,
        elapsed: float,
        val: float,
        best: float,
        args: dict,
    ) -> float:
        """Write last.pt (and best.pt when `val` beats `best`); -> the new best."""
        if (val > best) if self.higher_is_better else (val < best):
            best = val
            torch.save({"model": model.state_dict(), "epoch": epoch, "val": val}, self.dir / "best.pt")
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "elapsed_s": elapsed}
        torch.save(state | {"best": best, "val": val, "args": args}, self.dir / "last.pt")
        return best


def started_from(onnx: Path | None) -> dict | None:
    """The exported model a run starts from (`--init-onnx`), as its manifest names and made it."""
    if onnx is None:
        return None
    manifest = json.loads((onnx.parent / "manifest.json").read_text())
    return {"model": f"{manifest['name']} {manifest['version']}", "sha256": manifest["sha256"],
            "command": manifest["training"]["command"]}
