"""Export a findings checkpoint to models/pano-findings/ (ONNX opset 17, dynamic batch, height, width).

    .venv/bin/python -m training.pano_findings.export \
        --checkpoint training/pano_findings/runs/caries-unet/best.pt

The manifest's per-type thresholds start at the checkpoint's own validation choice (work frame);
`pipelines.pano.evaluation.eval_findings --write-manifest` then chooses them again on the
full-resolution results of the real pipeline and writes them here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipelines.pano import findings
from pipelines.pano.preprocess import HIGH_PERCENTILE, LOW_PERCENTILE
from training.onnx_export import export_checked, sha256
from training.pano_findings.model import FindingsUNet

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "models" / "pano-findings"
TRAIN_COMMAND = ".venv/bin/python -m training.pano_findings.train --max-minutes 118"
CHECKPOINT = "training/pano_findings/runs/caries-unet/best.pt"
TYPES = ("caries",)  # output channel order


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=ROOT / CHECKPOINT)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--version", default="1.0.0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = torch.load(args.checkpoint, weights_only=False, map_location="cpu")
    model = FindingsUNet(len(TYPES))
    model.load_state_dict(ckpt["model"])
    onnx_path = args.out / "model.onnx"
    # Checked at another size than the example: height and width are dynamic.
    err = export_checked(model, (1, 368, 784), onnx_path, ("image", "logits"),
                         {0: "batch", 2: "height", 3: "width"}, check_shape=(1, 336, 760))
    val = ckpt.get("val", {})
    state = ckpt["state"]
    manifest = {
        "name": "pano-findings",
        "version": args.version,
        "task_type": "pano",
        "onnx": "model.onnx",
        "sha256": sha256(onnx_path),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, "height", "width"]}],
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": ["batch", len(TYPES), "height", "width"]}
        ],
        "batch": {"min": 1, "opt": 1, "max": 1},
        # Dental crops of 2943 x 1435 films are about 370 x 780 work px. At most the whole film: 1472 px
        # wide (padded 1472), and as tall as the pano check's narrowest aspect (0.9) allows (1636).
        "dim_ranges": {"height": {"min": 16, "opt": 368, "max": 1664},
                       "width": {"min": 16, "opt": 784, "max": 1536}},
        "preprocessing": {
            "crop": f"union of the tooth boxes of pano-teeth plus {findings.ROI_MARGIN_WORK} work px",
            "resize": f"film scaled to width {findings.WORK_WIDTH} px (cv2.INTER_AREA when shrinking)",
            "gray": True,
            "clip_percentiles": [LOW_PERCENTILE, HIGH_PERCENTILE],
            "normalise": "on the crop: clip to the percentile window, scale to [0, 1], zero mean, unit std",
            "pad": f"edge padding to a multiple of {findings.STRIDE}",
            "code": "pipelines/pano/findings.py",
        },
        "postprocessing": {
            "pixel_threshold": findings.PIXEL_THRESHOLD,
            "min_area_work_px": findings.MIN_AREA_WORK,
            "score": "peak sigmoid probability of the 8-connected blob",
            "assign_margin_px": findings.ASSIGN_MARGIN_PX,
        },
        "findings": [
            {"type": t, "channel": k, "threshold": float(val.get("threshold", 0.5)),
             "default": float(val.get("p", 0.0)) >= 0.5,
             "chosen_on": "training validation (work frame); rechosen by eval_findings --write-manifest"}
            for k, t in enumerate(TYPES)
        ],
        "training": {
            "command": TRAIN_COMMAND,
            "data": "pano/dc1000_caries, split training/pano_findings/split.json (64 train / 16 val films)",
            # Training time (validation and mining included) when this checkpoint was saved.
            "minutes_at_checkpoint": round(state["elapsed_s"] / 60, 1),
            "epoch_of_checkpoint": int(state["epoch"]),
            "val_work_frame_at_checkpoint": {k: round(float(v), 4) for k, v in val.items()},
        },
        "torch_reference": {
            "factory": "training.pano_findings.model:FindingsUNet",
            "kwargs": {"num_outputs": len(TYPES)},
            "checkpoint": CHECKPOINT,
        },
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB), max |ONNX - torch| {err:.2e}")


if __name__ == "__main__":
    main()
