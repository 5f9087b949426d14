"""Export a ceph checkpoint to models/ (ONNX opset 17, dynamic batch) with its manifest.

.venv/bin/python -m training.ceph.export --checkpoint training/ceph/runs/unet-256x320/last.pt
.venv/bin/python -m training.ceph.export --stage refine --checkpoint training/ceph/runs/refine-64-rot3/last.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipelines.ceph import refine
from pipelines.ceph.pipeline import REFINE_MODEL
from pipelines.ceph.preprocess import HEATMAP_STRIDE, INPUT_HEIGHT, INPUT_WIDTH, LANDMARK_IDS, NUM_LANDMARKS
from training.ceph.model import LandmarkUNet
from training.ceph.train_refine import WIDTHS as REFINE_WIDTHS
from training.onnx_export import export_checked, sha256

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "ceph-landmarks"
OUT_REFINE = ROOT / "models" / REFINE_MODEL
TRAIN_COMMAND = ".venv/bin/python -m training.ceph.train --max-minutes 85"
REFINE_COMMAND = ".venv/bin/python -m training.ceph.train_refine --max-minutes 95"


def to_onnx(
    checkpoint: Path, model: torch.nn.Module, input_name: str, shape: tuple[int, ...], out: Path
) -> dict:
    """Load the checkpoint's weights into `model`, write out/model.onnx (dynamic batch) checked
    against torch; -> the checkpoint dict."""
    torch.set_num_threads(1)
    ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
    model.load_state_dict(ck["model"])
    export_checked(model, shape, out / "model.onnx", (input_name, "heatmaps"), {0: "batch"})
    return ck


def export(checkpoint: Path, out: Path = OUT, wall_minutes: float | None = None) -> None:
    """Stage 1: the whole film at 256x320."""
    ck = to_onnx(checkpoint, LandmarkUNet(NUM_LANDMARKS), "image", (1, INPUT_HEIGHT, INPUT_WIDTH), out)
    onnx_path = out / "model.onnx"
    h, w = INPUT_HEIGHT // HEATMAP_STRIDE, INPUT_WIDTH // HEATMAP_STRIDE
    if wall_minutes is None:
        wall_minutes = ck.get("elapsed_s", 0) / 60
    manifest = {
        "name": "ceph-landmarks",
        "version": "1.1.0",
        "task_type": "ceph",
        "onnx": "model.onnx",
        "sha256": sha256(onnx_path),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, INPUT_HEIGHT, INPUT_WIDTH]}],
        "outputs": [{"name": "heatmaps", "dtype": "float32", "shape": ["batch", NUM_LANDMARKS, h, w]}],
        "batch": {"min": 1, "opt": 1, "max": 4},
        "preprocessing": {
            "input_width": INPUT_WIDTH,
            "input_height": INPUT_HEIGHT,
            "color": "grayscale (mean of RGB), stretched to the 0.5-99.5 percentiles to uint8",
            "resize": "cv2.INTER_AREA to input size, aspect stretched; coordinates mapped back per axis",
            "normalisation": "x/255, then per-image zero mean and unit variance",
            "heatmap_stride": HEATMAP_STRIDE,
            "decoding": "argmax + log-parabola sub-pixel offset per axis; "
            "peak value = confidence (target peak 1)",
            "landmarks": LANDMARK_IDS,
        },
        "training": {
            "command": TRAIN_COMMAND,
            "data": "ISBI 2015 cephalometric train 001-100 (640x800) "
            "+ Hamedan 001-070 (50 random per epoch; 071-100 held out for cross-site evaluation); "
            "validation ISBI 151-200, never trained on",
            "wall_minutes": round(float(wall_minutes), 1),
            "epochs": int(ck.get("epoch", 0)),
        },
        # bench/engine_latency.py builds this PyTorch module to time eager against ONNX Runtime.
        "torch_reference": {
            "factory": "training.ceph.model:LandmarkUNet",
            "kwargs": {},
            "checkpoint": "training/ceph/runs/unet-256x320/last.pt",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def export_refine(checkpoint: Path, out: Path = OUT_REFINE) -> None:
    """Stage 2: 19 patches of the 640x800 frame, one per landmark, in one batch."""
    p, hp = refine.PATCH, refine.PATCH // refine.PATCH_STRIDE
    ck = to_onnx(checkpoint, LandmarkUNet(NUM_LANDMARKS, REFINE_WIDTHS), "patches", (1, p, p), out)
    manifest = {
        "name": REFINE_MODEL,
        "version": "1.0.0",
        "task_type": "ceph",
        "onnx": "model.onnx",
        "sha256": sha256(out / "model.onnx"),
        "inputs": [{"name": "patches", "dtype": "float32", "shape": ["batch", 1, p, p]}],
        "outputs": [{"name": "heatmaps", "dtype": "float32", "shape": ["batch", NUM_LANDMARKS, hp, hp]}],
        # One image = 19 patches (one per landmark); up to two images per call.
        "batch": {"min": 1, "opt": NUM_LANDMARKS, "max": 2 * NUM_LANDMARKS},
        "preprocessing": {
            "frame": f"the stage-1 grayscale image resized to {refine.REF_WIDTH}x{refine.REF_HEIGHT} "
            "(INTER_AREA when shrinking), mirrored when the face looks left",
            "patch": f"{p}x{p} frame pixels centred on the stage-1 estimate of landmark k (batch row k), "
            "bilinear, zeros outside the film",
            "normalisation": "x/255, then per-patch zero mean and unit variance",
            "heatmap_stride": refine.PATCH_STRIDE,
            "decoding": "channel k of row k: argmax + log-parabola sub-pixel offset per axis; "
            "peak value = confidence (target peak 1)",
            "code": "pipelines/ceph/refine.py",
            "landmarks": LANDMARK_IDS,
        },
        "training": {
            "command": REFINE_COMMAND,
            "data": "patches of ISBI 2015 train 001-100 (640x800) + Hamedan 001-070 (resized to 640x800) "
            "around ground truth moved like stage-1 errors; validation: stage-1 predictions on ISBI "
            "151-200, never trained on",
            "wall_minutes": round(float(ck.get("elapsed_s", 0)) / 60, 1),
            "epochs": int(ck.get("epoch", 0)),
        },
        "torch_reference": {
            "factory": "training.ceph.model:LandmarkUNet",
            "kwargs": {"widths": list(REFINE_WIDTHS)},
            "checkpoint": "training/ceph/runs/refine-64-rot3/last.pt",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("landmarks", "refine"), default="landmarks")
    ap.add_argument("--checkpoint", type=Path)
    args = ap.parse_args()
    if args.stage == "refine":
        export_refine(args.checkpoint or ROOT / "training/ceph/runs/refine-64-rot3/last.pt")
    else:
        export(args.checkpoint or ROOT / "training/ceph/runs/unet-256x320/last.pt")


if __name__ == "__main__":
    main()
