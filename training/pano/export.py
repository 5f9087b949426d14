"""Export a training checkpoint to models/pano-teeth/ (ONNX opset 17, dynamic batch) with its manifest.

    .venv/bin/python -m training.pano.export --checkpoint training/pano/runs/unet53-v22b/last.pt
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.pano import preprocess
from pipelines.pano.numbering import CLASS_FDI
from training.onnx_export import export_checked, load_checkpoint, sha256
from training.pano.model import TeethUNet

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "pano-teeth"
VERSION = "2.2.0"
CHECKPOINT = "training/pano/runs/unet53-v22b/last.pt"
# Three runs: 2.0.0 from pano-teeth 1.0.0 (git show 8a76ca3:models/pano-teeth/model.onnx), 2.1.0
# from 2.0.0 (git show fa611a1:models/pano-teeth/model.onnx), 2.2.0 from 2.1.0 (git show
# 59aec73:models/pano-teeth/model.onnx) with the seams between touching teeth weighted.
TRAIN_COMMAND = (".venv/bin/python -m training.pano.train --max-minutes 100 --lr 2e-3 "
                 "--init-onnx training/pano/runs/pano-teeth-1.0.0.onnx; "
                 ".venv/bin/python -m training.pano.train --max-minutes 105 --lr 1e-3 "
                 "--init-onnx training/pano/runs/pano-teeth-2.0.0.onnx --run unet53-v21; "
                 ".venv/bin/python -m training.pano.train --max-minutes 80 --lr 2e-4 --border-weight 4 "
                 "--init-onnx training/pano/runs/pano-teeth-2.1.0.onnx --run unet53-v22b")


def main() -> None:
    args, ckpt = load_checkpoint(ROOT / CHECKPOINT, OUT)
    model = TeethUNet(len(CLASS_FDI))
    model.load_state_dict(ckpt["model"])
    h, w = preprocess.INPUT_HEIGHT, preprocess.INPUT_WIDTH
    onnx_path = args.out / "model.onnx"
    err = export_checked(model, (1, h, w), onnx_path, ("image", "logits"), {0: "batch"})
    manifest = {
        "name": "pano-teeth",
        "version": VERSION,
        "task_type": "pano",
        "onnx": "model.onnx",
        "sha256": sha256(onnx_path),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, h, w]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", len(CLASS_FDI), h, w]}],
        "batch": {"min": 1, "opt": 1, "max": 4},
        "preprocessing": {
            "resize": f"stretch to {w}x{h} (width x height), cv2.INTER_AREA when shrinking",
            "input_height": h,
            "input_width": w,
            "gray": True,
            "clip_percentiles": [preprocess.LOW_PERCENTILE, preprocess.HIGH_PERCENTILE],
            "normalise": "clip to the percentile window, scale to [0, 1], then per-image zero mean, unit std",
            "code": "pipelines/pano/preprocess.py",
        },
        "training": {
            "command": TRAIN_COMMAND,
            "data": "pano/ufba425 (UFBA-425 subset, 360 images), split training/pano/split.json "
            "(300 train / 60 val); pano/tufts (Tufts Dental Database, 700 images), split "
            "training/pano/split_tufts.json (600 train / 100 val); balanced per epoch",
            "wall_minutes": round(ckpt["state"]["elapsed_s"] / 60, 1),
            "epoch": ckpt["state"]["epoch"],
            "best_val_tooth_dice": round(ckpt["state"]["best"], 4),
        },
        "licence": "trained on Tufts per-tooth polygons (AKUDENTAL, CC BY-NC-SA 4.0): the weights carry "
        "these terms (non-commercial, share alike); UFBA-425 Apache-2.0; see MODEL_CARD.md",
        "classes": list(CLASS_FDI),
        # bench/engine_latency.py builds this PyTorch module to time eager against ONNX Runtime.
        "torch_reference": {
            "factory": "training.pano.model:TeethUNet",
            "kwargs": {"num_classes": len(CLASS_FDI)},
            "checkpoint": CHECKPOINT,
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), max |onnx - torch| {err:.2e}")


if __name__ == "__main__":
    main()
