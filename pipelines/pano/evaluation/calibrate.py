"""Calibrate the pano scores on validation films, cross-fitted, and say how well they are calibrated.

    .venv/bin/python -m pipelines.pano.evaluation.calibrate teeth [--write-manifest]
    .venv/bin/python -m pipelines.pano.evaluation.calibrate caries [--write-manifest]
    .venv/bin/python -m pipelines.pano.evaluation.calibrate periapical [--write-manifest]

The pipeline runs as the service runs it (refinement, int8 copies, one thread) on the validation
films, and every result it reports becomes a row: its raw features and whether it is right.
- teeth (UFBA `training/pano/split.json` and Tufts `training/pano/split_tufts.json` val films): right
  = a tooth with the right number (matched to an annotated tooth at IoU >= 0.5 with the same FDI
  number); features the mean tooth probability (`rawScore`, logit) and the share of it on the
  tooth's number (logit). A tooth whose score is below CHECK_NUMBER_BELOW carries "check number".
- caries (DC1000 val, `training/pano_findings/split.json`) and periapical (Tufts val): right = a true
  lesion (matched one to one at IoU >= 0.1, as eval_findings counts), among the findings the
  manifest's thresholds show; caries on the peak probability (`rawScore`, logit) alone, so that the
  calibrated score orders findings as the raw score does and the type's threshold on the raw score
  is a threshold on it too; periapical lesions no feature (CONSTANT, below). The lesion's area in
  the model's work frame (`area_work`) is a feature the module reads, measured (AUROC printed) but
  not used: on the 61 caries findings adding it (log) changed the cross-fitted ECE from 0.106 to
  0.108 and AUROC not at all (0.846), with a coefficient near 0.
Platt scaling (logistic regression on those features, L2 1.0) is fitted FOLDS times, each time on the
films of the other folds, and scores the held-out fold's rows: the "after" figures are of these
cross-fitted scores, so no row is scored by a calibrator that saw its film. `--write-manifest`
writes the calibrator fitted on all the films into the model's manifest (`calibration`); the
thresholds that decide what is shown (`min_score` for teeth, `findings[].threshold`) stay on the
raw score, as the manifest says.
Printed: expected calibration error (10 equal-width bins) and the reliability table before (the raw
score) and after, AUROC of each for right against wrong, and for teeth how often the flag is right.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from dentalai.v1 import task_pb2
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.calibration import Calibrator, auroc, cross_fitted, ece, reliability
from pipelines.pano.evaluation.eval_findings import finding_labels
from pipelines.pano.evaluation.eval_pano import add_engine_arguments, engine_for, evaluate, refine_extras
from pipelines.pano.evaluation.findings_data import Dc1000, Tufts
from pipelines.pano.evaluation.lesions import matched_predictions
from pipelines.pano.findings import FINDINGS_MODEL, PERIAPICAL_MODEL
from pipelines.pano.pipeline import PanoPipeline

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "pano"
FOLDS = 5
L2 = 1.0
# A tooth whose calibrated probability of the right number is below this is flagged: fixed before
# the calibration was fitted, at the point where the number is more likely wrong than right.
CHECK_NUMBER_BELOW = 0.5
TEETH = {"features": ("raw_score", "number_share"), "transforms": ("logit", "logit")}
LESIONS = {"features": ("raw_score",), "transforms": ("logit",)}
# Periapical lesions: on the 34 findings its validation films show, neither the peak probability
# (AUROC 0.43) nor the area (0.38) told true lesions from false ones, so its calibrated score is a
# constant, the share of true lesions among the findings shown (each fold's from the other folds).
CONSTANT: dict = {"features": (), "transforms": ()}
SPECS = {"teeth": TEETH, "caries": LESIONS, "periapical": CONSTANT}
# finding type -> (reader, split, findings model)
FINDINGS = {
    "caries": (Dc1000, ROOT / "training" / "pano_findings" / "split.json", FINDINGS_MODEL),
    "periapical": (Tufts, ROOT / "training" / "pano" / "split_tufts.json", PERIAPICAL_MODEL),
}


def teeth_rows(args: argparse.Namespace) -> list[dict]:
    pipeline = PanoPipeline(engine_for(ROOT / "models" / "pano-teeth", args), extras=refine_extras(args))
    rows = []
    for dataset, split in (
        ("ufba425", "training/pano/split.json"),
        ("tufts", "training/pano/split_tufts.json"),
    ):
        coco = json.loads((DATA / dataset / "annotations.json").read_text())
        ids = json.loads((ROOT / split).read_text())["val"]
        report = evaluate(pipeline, coco, DATA / dataset / "images", ids)
        rows += [{**r, "film": f"{dataset}/{r['film']}"} for r in report["tooth_records"]]
    return rows


def finding_rows(kind: str, args: argparse.Namespace) -> list[dict]:
    reader, split, model_name = FINDINGS[kind]
    films = reader()
    extra = engine_for(ROOT / "models" / model_name, args)
    pipeline = PanoPipeline(
        engine_for(ROOT / "models" / "pano-teeth", args),
        extras={extra.manifest.name: extra, **refine_extras(args)},
    )
    model = pipeline.findings[extra.manifest.name]
    # The findings the service shows when the type is asked for (its manifest thresholds), uncalibrated.
    model.types = [dataclasses.replace(t, calibrator=None) for t in model.types]
    work_width = model.work_width
    rows = []
    for image_id in json.loads(split.read_text())["val"]:
        pixels, truth = films.pixels(image_id), films.mask(image_id)
        try:
            found = [
                f
                for f in pipeline.run(
                    DecodedImage(pixels), task_pb2.AnalysisOptions(findings=[kind])
                ).findings
                if f.type == kind
            ]
        except PipelineError:
            found = []
        h, w = pixels.shape
        right = matched_predictions(finding_labels(found, h, w), len(found), truth)
        scale = w / work_width
        for i, f in enumerate(found):
            rows.append(
                {
                    "film": str(image_id),
                    "raw_score": f.raw_score,
                    "area_work": f.area_px / scale**2,
                    "right": i in right,
                }
            )
    return rows


def table(p: np.ndarray, right: np.ndarray) -> str:
    lines = ["| score | results | mean score | share right |", "|---|---|---|---|"]
    for r in reliability(p, right):
        if r["n"]:
            lines.append(
                f"| {r['low']:.1f}-{r['high']:.1f} | {r['n']} | {r['mean_score']:.3f} "
                f"| {r['share_right']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["teeth", *FINDINGS])
    add_engine_arguments(parser)
    parser.add_argument(
        "--rows", type=Path, help="read the rows from this JSON file (written by --save-rows)"
    )
    parser.add_argument("--save-rows", type=Path)
    parser.add_argument("--write-manifest", action="store_true")
    args = parser.parse_args()
    spec = SPECS[args.kind]
    if args.rows:
        rows = json.loads(args.rows.read_text())
    else:
        rows = teeth_rows(args) if args.kind == "teeth" else finding_rows(args.kind, args)
    if args.save_rows:
        args.save_rows.write_text(json.dumps(rows) + "\n")
    right = np.array([r["right"] for r in rows], bool)
    cols = {f: np.array([r[f] for r in rows], np.float64) for f in ("raw_score", *spec["features"])}
    films = [r["film"] for r in rows]
    raw = cols["raw_score"]
    after = cross_fitted(cols, right, films, spec["features"], spec["transforms"], FOLDS, L2)
    print(
        f"{args.kind}: {len(rows)} results on {len(set(films))} validation films, {int(right.sum())} right "
        f"({right.mean():.3f}); calibration cross-fitted over {FOLDS} folds by film"
    )
    print(f"ECE  raw score {ece(raw, right):.4f}   calibrated {ece(after, right):.4f}")
    print(f"AUROC (right vs wrong)  raw score {auroc(raw, right):.3f}   calibrated {auroc(after, right):.3f}")
    for name in ("number_share", "area_work"):
        if rows and name in rows[0]:
            print(f"AUROC of {name} alone {auroc([r[name] for r in rows], right):.3f}")
    print("before (raw score):\n" + table(raw, right))
    print("after (calibrated, cross-fitted):\n" + table(after, right))
    report: dict = {
        "rows": len(rows),
        "right": int(right.sum()),
        "ece_raw": ece(raw, right),
        "ece_calibrated": ece(after, right),
        "auroc_raw": auroc(raw, right),
        "auroc_calibrated": auroc(after, right),
    }
    if args.kind == "teeth":
        flagged = after < CHECK_NUMBER_BELOW
        wrong = ~right
        print(
            f"check number (score < {CHECK_NUMBER_BELOW}): {int(flagged.sum())} teeth flagged, "
            f"{int((flagged & wrong).sum())} of them wrong "
            f"({(flagged & wrong).sum() / max(flagged.sum(), 1):.2f}); "
            f"{int((flagged & wrong).sum())} of the {int(wrong.sum())} wrong teeth flagged "
            f"({(flagged & wrong).sum() / max(wrong.sum(), 1):.2f})"
        )
        for cut in (0.3, 0.5, 0.7, 0.8, 0.9):
            f = after < cut
            print(
                f"  at {cut}: flagged {int(f.sum())}, "
                f"wrong among them {(f & wrong).sum() / max(f.sum(), 1):.2f}, "
                f"wrong teeth flagged {(f & wrong).sum() / max(wrong.sum(), 1):.2f}"
            )
    if args.write_manifest:
        cal = Calibrator.fit(cols, right, spec["features"], spec["transforms"], L2)
        entry = {
            **cal.to_manifest(),
            "fitted_on": f"{len(rows)} results on {len(set(films))} validation films",
            "target": (
                "a tooth with the right FDI number (IoU >= 0.5)"
                if args.kind == "teeth"
                else "a true lesion (IoU >= 0.1)"
            ),
            "ece_raw": round(report["ece_raw"], 4),
            "ece_cross_fitted": round(report["ece_calibrated"], 4),
            "command": f"python -m pipelines.pano.evaluation.calibrate {args.kind} --write-manifest",
        }
        if args.kind == "teeth":
            path = ROOT / "models" / "pano-teeth" / "manifest.json"
            manifest = json.loads(path.read_text())
            manifest["calibration"] = {
                **entry,
                "check_number_below": CHECK_NUMBER_BELOW,
                "score_thresholds": "min_score (pipelines/pano/pipeline.py PanoConfig) "
                "applies to the raw score, the mean tooth probability",
            }
        else:
            path = ROOT / "models" / FINDINGS[args.kind][2] / "manifest.json"
            manifest = json.loads(path.read_text())
            for t in manifest["findings"]:
                if t["type"] == args.kind:
                    t["threshold_applies_to"] = (
                        "raw_score (the lesion's peak probability), not the calibrated score"
                    )
                    t["calibration"] = entry
                    if cal.features == ("raw_score",):  # monotone in the raw score
                        t["threshold_as_calibrated_score"] = round(cal(raw_score=float(t["threshold"])), 4)
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"written to {path}")


if __name__ == "__main__":
    main()
