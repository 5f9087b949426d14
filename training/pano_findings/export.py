"""Export a findings checkpoint to its model directory (ONNX opset 17, dynamic batch, height, width).

    .venv/bin/python -m training.pano_findings.export --finding caries       # models/pano-findings
    .venv/bin/python -m training.pano_findings.export --finding periapical   # models/pano-periapical

The checkpoint is the recipe's runs/<run>/best.pt unless --checkpoint names another.
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
from training.onnx_export import export_checked, repo_path, sha256
from training.pano_findings.train import RECIPES, build_model

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--finding", choices=sorted(RECIPES), default="caries")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--version", default="1.0.0")
    args = parser.parse_args()
    recipe = RECIPES[args.finding]
    types = (recipe.finding or args.finding,)  # output channel order
    default = ROOT / f"training/pano_findings/runs/{recipe.run}/best.pt"
    path = (args.checkpoint or default).resolve()
    checkpoint = repo_path(path)
    out = args.out or ROOT / "models" / recipe.model
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    recipe = recipe.at_width(int(ckpt["state"].get("work_width", recipe.work_width)))
    model = build_model(recipe, len(types))
    model.load_state_dict(ckpt["model"])
    onnx_path = out / "model.onnx"
    (opt_h, opt_w), (max_h, max_w) = recipe.opt_size, recipe.max_size
    # Checked at another size than the example: height and width are dynamic.
    err = export_checked(model, (1, opt_h, opt_w), onnx_path, ("image", "logits"),
                         {0: "batch", 2: "height", 3: "width"}, check_shape=(1, opt_h - 32, opt_w - 24))
    val = ckpt.get("val", {})
    state = ckpt["state"]
    manifest = {
        "name": recipe.model,
        "version": args.version,
        "task_type": "pano",
        "onnx": "model.onnx",
        "sha256": sha256(onnx_path),
        "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, "height", "width"]}],
        "outputs": [
            {"name": "logits", "dtype": "float32", "shape": ["batch", len(types), "height", "width"]}
        ],
        "batch": {"min": 1, "opt": 1, "max": 1},
        "dim_ranges": {"height": {"min": 16, "opt": opt_h, "max": max_h},
                       "width": {"min": 16, "opt": opt_w, "max": max_w}},
        "preprocessing": {
            "crop": f"union of the tooth boxes of pano-teeth plus {findings.ROI_MARGIN_WORK} work px",
            "resize": f"film scaled to width {recipe.work_width} px (cv2.INTER_AREA when shrinking)",
            "work_width": recipe.work_width,
            "region": recipe.region,
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
             "default": float(val.get("p", 0.0)) >= 0.5, "min_film_width": recipe.min_film_width,
             "chosen_on": "training validation (work frame); rechosen by eval_findings --write-manifest"}
            for k, t in enumerate(types)
        ],
        "training": {
            # Runs before the command was kept in the checkpoint: the recipe's own command.
            "command": state.get("command") or f".venv/bin/python -m training.pano_findings.train "
            f"--finding {args.finding} --max-minutes {recipe.minutes}",
            "data": recipe.data,
            # Training time (validation and mining included) when this checkpoint was saved.
            "minutes_at_checkpoint": round(state["elapsed_s"] / 60, 1),
            "epoch_of_checkpoint": int(state["epoch"]),
            "val_work_frame_at_checkpoint": {k: round(float(v), 4) for k, v in val.items()},
            **({"started_from": state["started_from"]} if state.get("started_from") else {}),
        },
        "torch_reference": {
            "factory": "training.pano.model:TeethUNet" if recipe.backbone == "pano-teeth"
            else "training.pano_findings.model:FindingsUNet",
            "kwargs": {"num_classes": len(types)} if recipe.backbone == "pano-teeth"
            else {"num_outputs": len(types), "widths": list(recipe.widths)},
            "checkpoint": checkpoint,
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB), max |ONNX - torch| {err:.2e}")


if __name__ == "__main__":
    main()
