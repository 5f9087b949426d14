"""Export a refinement checkpoint to models/pano-teeth-refine/ (ONNX opset 17, dynamic batch).

    .venv/bin/python -m training.pano_refine.export \
        --checkpoint training/pano_refine/runs/refine-ft2/last.pt
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.pano import refine
from training.onnx_export import export_checked, load_checkpoint, repo_path, sha256
from training.pano_refine.model import RefineUNet
from training.pano_refine.train import HEIGHT, WIDTH

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / refine.REFINE_MODEL
VERSION = "1.1.0"
CHECKPOINT = "training/pano_refine/runs/refine-ft2/last.pt"
CACHES = (
    ".venv/bin/python -m training.pano_refine.data --dataset ufba425; "
    ".venv/bin/python -m training.pano_refine.data --dataset tufts; "
)


def main() -> None:
    args, ckpt = load_checkpoint(ROOT / CHECKPOINT, OUT)
    model = RefineUNet()
    model.load_state_dict(ckpt["model"])
    onnx_path = args.out / "model.onnx"
    err = export_checked(model, (2, HEIGHT, WIDTH), onnx_path, ("crops", "logits"), {0: "batch"})
    run_args = ckpt["args"]  # the trainer records its command and, for a fine-tune, its start
    share = run_args.get("tufts_share", 0.5)
    mix = "half of each" if share == 0.5 else f"{share:.0%} Tufts, {1 - share:.0%} UFBA teeth"
    manifest = {
        "name": refine.REFINE_MODEL,
        "version": VERSION,
        "task_type": "pano",
        "onnx": "model.onnx",
        "sha256": sha256(onnx_path),
        "inputs": [{"name": "crops", "dtype": "float32", "shape": ["batch", 2, HEIGHT, WIDTH]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 1, HEIGHT, WIDTH]}],
        # One film's teeth in one call (up to 52 outlines; more go in a second call).
        "batch": {"min": 1, "opt": 32, "max": 52},
        "preprocessing": {
            "frame": f"the film resized to at most {refine.FRAME_WIDTH} px wide (INTER_AREA), clipped to its "
            "1st-99th percentile window, scaled to [0, 1]",
            "crop": f"each tooth's whole-film box grown by {refine.GROW_X:g} of its width and "
            f"{refine.GROW_Y:g} of its height on each side, resized to {WIDTH}x{HEIGHT} (width x height), "
            "bilinear",
            "channels": "0: the film crop, per-crop zero mean and unit std; 1: the whole-film model's "
            "probability of the tooth's own classes on the same grid (0 outside the film)",
            "output": "logit of the tooth's mask; > 0 is the tooth; its largest component is the outline",
            "code": "pipelines/pano/refine.py",
        },
        "training": {
            "command": CACHES + run_args["command"],
            **({"started_from": run_args["started_from"]} if run_args.get("started_from") else {}),
            "data": "ground-truth teeth of pano/ufba425 (split training/pano/split.json, 300 train "
            "films) and pano/tufts (training/pano/split_tufts.json, 600 train films), "
            f"{mix} per batch; the second channel from the shipped pano-teeth (2.2.0 in this run's caches, "
            "2.1.0 in those of the run it started from)",
            "wall_minutes": round(ckpt["elapsed_s"] / 60, 1),
            "epoch": ckpt["epoch"],
            "val_crop_dice": round(ckpt["val"], 4),
        },
        "licence": "trained on Tufts per-tooth polygons (AKUDENTAL, CC BY-NC-SA 4.0): the weights carry "
        "these terms (non-commercial, share alike); UFBA-425 Apache-2.0; see MODEL_CARD.md",
        "torch_reference": {
            "factory": "training.pano_refine.model:RefineUNet",
            "kwargs": {},
            "checkpoint": repo_path(args.checkpoint),
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB), max |onnx - torch| {err:.2e}")


if __name__ == "__main__":
    main()
