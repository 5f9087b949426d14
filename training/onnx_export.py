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
    names: tuple[str, ...],
    dynamic: dict[int, str],
    check_shape: tuple[int, ...] | None = None,
) -> float:
    """Export `model` (eval mode) with `names` (the input's, then one per output: a model that
    returns a tuple has several) and these dynamic axes of every one (those of the outputs
    that have them), then compare ONNX Runtime with PyTorch on random input (dynamic sizes: at
    `check_shape`, so another size than the example); -> the max absolute difference (asserted
    under 1e-3)."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    inp, *outs = names
    x = torch.randn(2, *(check_shape or example_shape))
    with torch.no_grad():
        expected = model(x)
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    axes = {inp: dynamic} | {o: {k: v for k, v in dynamic.items() if k < e.ndim}
                             for o, e in zip(outs, expected, strict=True)}
    torch.onnx.export(
        model,
        (torch.randn(1, *example_shape),),
        str(path),
        opset_version=17,
        input_names=[inp],
        output_names=outs,
        dynamic_axes=axes,
        dynamo=False,
    )
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(outs, {inp: x.numpy()})
    err = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    assert err < 1e-3, f"ONNX differs from PyTorch by {err}"
    return err


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
