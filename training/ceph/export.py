"""Export a ceph checkpoint to models/ceph-landmarks/ (ONNX opset 17, dynamic batch) with its manifest.

.venv/bin/python -m training.ceph.export --checkpoint training/ceph/runs/unet-256x320/last.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from pipelines.ceph.preprocess import HEATMAP_STRIDE, INPUT_HEIGHT, INPUT_WIDTH, LANDMARK_IDS, NUM_LANDMARKS
from training.ceph.model import LandmarkUNet

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "ceph-landmarks"
TRAIN_COMMAND = ".venv/bin/python -m training.ceph.train --max-minutes 85"


def export(checkpoint: Path, out: Path = OUT, wall_minutes: float | None = None) -> None:
    torch.set_num_threads(1)
    ck = torch.load(checkpoint, weights_only=False, map_location="cpu")
    model = LandmarkUNet(NUM_LANDMARKS)
    model.load_state_dict(ck["model"])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    dummy = torch.zeros(1, 1, INPUT_HEIGHT, INPUT_WIDTH)
    torch.onnx.export(
        model,
        (dummy,),
        str(onnx_path),
        opset_version=17,
        input_names=["image"],
        output_names=["heatmaps"],
        dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}},
        dynamo=False,
    )
    # Check the exported graph against torch on a batch of 2.
    x = np.random.default_rng(0).standard_normal((2, 1, INPUT_HEIGHT, INPUT_WIDTH)).astype(np.float32)
    ref = model(torch.from_numpy(x)).detach().numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(ref - got).max() < 1e-3, np.abs(ref - got).max()
    h, w = INPUT_HEIGHT // HEATMAP_STRIDE, INPUT_WIDTH // HEATMAP_STRIDE
    if wall_minutes is None:
        wall_minutes = ck.get("elapsed_s", 0) / 60
    manifest = {
        "name": "ceph-landmarks",
        "version": "1.1.0",
        "task_type": "ceph",
        "onnx": "model.onnx",
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "training/ceph/runs/unet-256x320/last.pt")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    export(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
