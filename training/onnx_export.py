"""Write a PyTorch module to ONNX (opset 17, the TorchScript exporter) and prove the file computes
what the module does, on a batch of two at `check_shape`: the one export path of every trainer."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch


def export_checked(
    model: torch.nn.Module,
    example_shape: tuple[int, ...],
    path: Path,
    names: tuple[str, str],
    dynamic: dict[int, str],
    check_shape: tuple[int, ...] | None = None,
) -> float:
    """Export `model` (eval mode) with input/output `names` and these dynamic axes of both, then
    compare ONNX Runtime with PyTorch on random input (dynamic sizes: at `check_shape`, so another
    size than the example); -> the max absolute difference (asserted under 1e-3)."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    inp, out = names
    torch.onnx.export(
        model,
        (torch.randn(1, *example_shape),),
        str(path),
        opset_version=17,
        input_names=[inp],
        output_names=[out],
        dynamic_axes={inp: dynamic, out: dynamic},
        dynamo=False,
    )
    x = torch.randn(2, *(check_shape or example_shape))
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run([out], {inp: x.numpy()})[0]
    err = float(np.abs(got - expected).max())
    assert err < 1e-3, f"ONNX differs from PyTorch by {err}"
    return err


ROOT = Path(__file__).resolve().parents[1]


def repo_path(path: Path) -> str:
    """A file as a manifest names it: relative to the repository root when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_checkpoint(default_checkpoint: Path, default_out: Path) -> tuple[argparse.Namespace, dict]:
    """An exporter's command line (`--checkpoint`, `--out`) and the checkpoint it names, on CPU."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=default_checkpoint)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    torch.set_num_threads(1)
    return args, torch.load(args.checkpoint, weights_only=False, map_location="cpu")
