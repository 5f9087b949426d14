"""Evaluate the pano pipeline (through the ONNX engine) on a COCO file and its images.

    .venv/bin/python -m pipelines.pano.evaluation.eval_pano \
        --coco ../shared/data/pano/ufba425/annotations.json --images ../shared/data/pano/ufba425/images \
        --split training/pano/split.json --split-key val --out /tmp/pano_eval.json
    .venv/bin/python -m pipelines.pano.evaluation.eval_pano --dataset tufts \
        --split training/pano/split_tufts.json --out /tmp/pano_eval_tufts.json

`--dataset` picks the shared set's default annotations and images (ufba425 or tufts).
Detection: predicted and ground-truth teeth are matched class-agnostically, greedily by IoU
(>= 0.5), one to one. Numbering accuracy: share of matched teeth whose FDI number is right.
Dice: mean per-tooth Dice over matched teeth. Masks are compared at the image's own size.
The same figures are also given per dentition (`by_dentition`: ground-truth permanent and primary
teeth; the predicted count is of teeth reported with a number of that dentition), and per image
whether primary teeth were reported (`images_with_primary`).

Edentulous jaws (`edentulous`): per film and jaw, whether the result calls the jaw edentulous
(`summary.edentulousJaws`) against whether the film has an annotated tooth in it, and the films the
pipeline refused (11003: not a panoramic; 12003). Scores (`scores`): ECE and AUROC of the teeth's
`score` for "a tooth with the right number" (matched at IoU >= 0.5 and the same FDI number) and how
often the "check number" flag is right; `--records` writes one row per reported tooth (its raw
features, score and whether it is right) for `calibrate.py`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from dentalai.v1 import task_pb2
from engines.base import Engine
from engines.onnxruntime_engine import PRECISIONS
from engines.registry import load_engine
from pipelines.base_pipeline import DecodedImage, PipelineError
from pipelines.calibration import auroc, ece
from pipelines.pano.dentition import JAWS, jaw_mass, jaw_of
from pipelines.pano.numbering import is_primary
from pipelines.pano.pipeline import Found, PanoConfig, PanoPipeline, Tooth
from pipelines.pano.refine import REFINE_MODEL

ROOT = Path(__file__).resolve().parents[3]


def polygon_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 8).astype(np.int32)], 1, shift=3)
    return mask.astype(bool)


def polygon_points(tooth: object) -> np.ndarray:
    """(N, 2) array from a Tooth's ListValue polygon."""
    return np.array([[c.number_value for c in v.list_value.values] for v in tooth.polygon.values], np.float64)


def match(
    pred: list[np.ndarray], gt: list[np.ndarray], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU; returns (pred index, gt index, dice)."""
    if not pred or not gt:
        return []
    p = np.stack([m.ravel() for m in pred]).astype(np.float32)
    g = np.stack([m.ravel() for m in gt]).astype(np.float32)
    inter = p @ g.T
    ps, gs = p.sum(1)[:, None], g.sum(1)[None, :]
    iou = inter / np.maximum(ps + gs - inter, 1)
    dice = 2 * inter / np.maximum(ps + gs, 1)
    pairs, used_p, used_g = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < threshold:
            break
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        pairs.append((i, j, float(dice[i, j])))
    return pairs


# Edentulous thresholds (teeth of tooth probability) the report also counts the calls at.
MASS_SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)


class ToothRecorder:
    """Keeps the features of each tooth the pipeline reports (`PanoPipeline.tooth` wrapped), by FDI
    number, and each jaw's tooth mass in teeth (`PanoPipeline.dentition` wrapped), for the film
    being run."""

    def __init__(self, pipeline: PanoPipeline) -> None:
        self.rows: dict[int, Found] = {}
        self.masses: dict[str, float] = {}
        inner, dentition = pipeline.tooth, pipeline.dentition
        unit = pipeline.config.tooth_area_px

        def tooth(found: Found) -> Tooth:
            self.rows[found.fdi] = found
            return inner(found)

        def record(found: list[Found], probs: np.ndarray, image: np.ndarray) -> list[str]:
            self.masses = {jaw: round(jaw_mass(probs, jaw) / unit, 3) for jaw in JAWS}
            return dentition(found, probs, image)

        pipeline.tooth = tooth  # type: ignore[method-assign]
        pipeline.dentition = record  # type: ignore[method-assign]


def edentulous_summary(films: list[dict]) -> dict:
    """Counts of the per-film rows: jaws without annotated teeth called edentulous, jaws with annotated
    teeth called edentulous, films refused."""
    jaws = {"annotated_edentulous": 0, "called": 0, "with_teeth": 0, "with_teeth_called": [],
            "edentulous_not_called": []}
    films_out = {"without_teeth": 0, "without_teeth_answered_edentulous": 0, "with_teeth": 0,
                 "with_teeth_answered_edentulous": [], "refused": {}}
    for f in films:
        if f["code"]:
            films_out["refused"].setdefault(str(f["code"]), []).append(f["film"])
        if sum(f["gt_per_jaw"].values()) == 0:
            films_out["without_teeth"] += 1
            films_out["without_teeth_answered_edentulous"] += set(f["edentulous"]) == set(JAWS)
        else:
            films_out["with_teeth"] += 1
            if set(f["edentulous"]) == set(JAWS):
                films_out["with_teeth_answered_edentulous"].append(f["film"])
        for jaw in JAWS:
            called = jaw in f["edentulous"]
            if f["gt_per_jaw"][jaw] == 0:
                jaws["annotated_edentulous"] += 1
                jaws["called"] += called
                if not called:
                    jaws["edentulous_not_called"].append(f"{f['film']} {jaw}")
            else:
                jaws["with_teeth"] += 1
                if called:
                    jaws["with_teeth_called"].append(f"{f['film']} {jaw} ({f['gt_per_jaw'][jaw]} annotated)")
    # The calls other thresholds would make (a jaw with no tooth reported and less tooth mass than
    # the threshold), on the films the film check let through.
    sweep = []
    for t in MASS_SWEEP:
        called = with_teeth = 0
        for f in films:
            if f["code"] == 11003 or not f["jaw_mass"]:
                continue
            for jaw in JAWS:
                call = f["jaw_teeth"][jaw] == 0 and f["jaw_mass"][jaw] < t
                if f["gt_per_jaw"][jaw] == 0:
                    called += call
                else:
                    with_teeth += call
        sweep.append({"teeth_of_mass": t, "annotated_edentulous_called": called,
                      "with_teeth_called": with_teeth})
    return {"films": films_out, "jaws": jaws, "mass_sweep": sweep}


def score_summary(teeth: list[dict]) -> dict:
    """How well the teeth's scores say which reported tooth is right (a tooth with the right number)."""
    if not teeth:
        return {}
    right = [t["right"] for t in teeth]
    flagged = [t for t in teeth if t["check_number"]]
    wrong = [t for t in teeth if not t["right"]]
    return {
        "teeth": len(teeth), "right": int(sum(right)),
        "ece_score": ece([t["score"] for t in teeth], right),
        "ece_raw": ece([t["raw_score"] for t in teeth], right),
        "auroc_score": auroc([t["score"] for t in teeth], right),
        "auroc_raw": auroc([t["raw_score"] for t in teeth], right),
        "check_number": {"flagged": len(flagged), "flagged_wrong": sum(not t["right"] for t in flagged),
                         "wrong": len(wrong), "wrong_flagged": sum(t["check_number"] for t in wrong)},
    }


def evaluate(pipeline: PanoPipeline, coco: dict, images_dir: Path, ids: list[int] | None) -> dict:
    images = {im["id"]: im for im in coco["images"]}
    recorder = ToothRecorder(pipeline)
    films: list[dict] = []
    tooth_rows: list[dict] = []
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    ids = sorted(images) if ids is None else ids
    tp = fp = fn = correct = 0
    dices: list[float] = []
    per_fdi: dict[int, dict[str, float]] = {}
    errors: dict[str, int] = {}
    seconds: list[float] = []
    dentition = {k: {"gt": 0, "predicted": 0, "found": 0, "right_number": 0, "dice_sum": 0.0}
                 for k in ("permanent", "primary")}
    # Images with ground-truth primary teeth (mixed) or without (permanent): how many got any primary.
    images_with_primary = {k: {"images": 0, "reported_primary": 0} for k in ("mixed", "permanent")}
    for image_id in ids:
        im = images[image_id]
        pixels = cv2.imread(str(images_dir / im["file_name"]), cv2.IMREAD_GRAYSCALE)
        h, w = pixels.shape
        anns = by_image.get(image_id, [])
        gt = [polygon_mask(np.asarray(a["segmentation"][0], np.float32).reshape(-1, 2), h, w) for a in anns]
        start = time.perf_counter()
        recorder.rows, recorder.masses = {}, {}
        code, edentulous, reported = 0, [], []
        try:
            result = pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
            teeth = [(t.fdi, polygon_points(t)) for t in result.teeth]
            edentulous, reported = list(result.summary.edentulous_jaws), list(result.teeth)
        except PipelineError as exc:
            code = int(exc.code)
            errors[str(code)] = errors.get(str(code), 0) + 1
            teeth = []
        seconds.append(time.perf_counter() - start)
        pred = [polygon_mask(poly, h, w) for _, poly in teeth]
        pairs = match(pred, gt)
        gt_of = {i: anns[j]["category_id"] for i, j, _ in pairs}
        for i, t in enumerate(reported):
            f = recorder.rows.get(t.fdi)
            tooth_rows.append({"film": str(image_id), "fdi": t.fdi, "score": t.score,
                               "raw_score": t.raw_score,
                               "number_share": f.number_share if f else 1.0, "check_number": t.check_number,
                               "matched": i in gt_of, "right": gt_of.get(i) == t.fdi})
        per_jaw = {jaw: sum(jaw_of(a["category_id"]) == jaw for a in anns) for jaw in JAWS}
        jaw_teeth = {jaw: sum(jaw_of(f) == jaw for f in recorder.rows) for jaw in JAWS}
        films.append({"film": str(image_id), "file": im["file_name"], "code": code, "edentulous": edentulous,
                      "teeth": len(teeth), "gt_per_jaw": per_jaw, "jaw_teeth": jaw_teeth,
                      "jaw_mass": recorder.masses})
        tp += len(pairs)
        fp += len(pred) - len(pairs)
        fn += len(gt) - len(pairs)
        matched_gt = {j: (i, d) for i, j, d in pairs}
        for fdi, _ in teeth:
            dentition["primary" if is_primary(fdi) else "permanent"]["predicted"] += 1
        kind = "mixed" if any(is_primary(a["category_id"]) for a in anns) else "permanent"
        images_with_primary[kind]["images"] += 1
        images_with_primary[kind]["reported_primary"] += any(is_primary(f) for f, _ in teeth)
        for j, ann in enumerate(anns):
            empty = {"gt": 0, "found": 0, "right_number": 0, "dice_sum": 0.0}
            row = per_fdi.setdefault(ann["category_id"], empty)
            row["gt"] += 1
            if j in matched_gt:
                i, d = matched_gt[j]
                row["found"] += 1
                row["dice_sum"] += d
                ok = teeth[i][0] == ann["category_id"]
                row["right_number"] += ok
                correct += ok
                dices.append(d)
            group = dentition["primary" if is_primary(ann["category_id"]) else "permanent"]
            group["gt"] += 1
            if j in matched_gt:
                group["found"] += 1
                group["dice_sum"] += matched_gt[j][1]
                group["right_number"] += teeth[matched_gt[j][0]][0] == ann["category_id"]
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    return {
        "images": len(ids),
        "gt_teeth": tp + fn,
        "predicted_teeth": tp + fp,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "numbering_accuracy": correct / max(tp, 1),
        "mean_dice": float(np.mean(dices)) if dices else 0.0,
        "pipeline_errors": errors,
        "seconds_per_image": float(np.mean(seconds)),
        "by_dentition": {
            k: {
                "gt": r["gt"],
                "predicted": r["predicted"],
                "recall": r["found"] / max(r["gt"], 1),
                "numbering_accuracy": r["right_number"] / max(r["found"], 1),
                "dice": r["dice_sum"] / max(r["found"], 1),
            }
            for k, r in dentition.items()
        },
        "images_with_primary": images_with_primary,
        "edentulous": edentulous_summary(films),
        "scores": score_summary(tooth_rows),
        "films": films,
        "tooth_records": tooth_rows,
        "per_fdi": {
            str(f): {
                "gt": int(r["gt"]),
                "recall": r["found"] / r["gt"],
                "numbering_accuracy": r["right_number"] / max(r["found"], 1),
                "dice": r["dice_sum"] / max(r["found"], 1),
            }
            for f, r in sorted(per_fdi.items())
        },
    }


def print_table(report: dict) -> None:
    print(f"images {report['images']}  gt teeth {report['gt_teeth']}  predicted {report['predicted_teeth']}  "
          f"errors {report['pipeline_errors']}  {report['seconds_per_image'] * 1000:.0f} ms/image")
    print(f"precision {report['precision']:.4f}  recall {report['recall']:.4f}  F1 {report['f1']:.4f}  "
          f"numbering {report['numbering_accuracy']:.4f}  mean Dice {report['mean_dice']:.4f}")
    for kind, row in report["by_dentition"].items():
        print(f"{kind:>9}: gt {row['gt']}  predicted {row['predicted']}  recall {row['recall']:.4f}  "
              f"numbering {row['numbering_accuracy']:.4f}  Dice {row['dice']:.4f}")
    for kind, row in report["images_with_primary"].items():
        print(f"images with {kind} ground truth: {row['images']}, with primary teeth reported: "
              f"{row['reported_primary']}")
    print_edentulous(report["edentulous"])
    print_scores(report["scores"])
    print(f"{'FDI':>4} {'gt':>4} {'recall':>7} {'number':>7} {'dice':>6}")
    for fdi, row in report["per_fdi"].items():
        print(f"{fdi:>4} {row['gt']:>4} {row['recall']:7.3f} "
              f"{row['numbering_accuracy']:7.3f} {row['dice']:6.3f}")


def print_edentulous(e: dict) -> None:
    films, jaws = e["films"], e["jaws"]
    print(f"edentulous: films without an annotated tooth answered edentulous (both jaws) "
          f"{films['without_teeth_answered_edentulous']} / {films['without_teeth']}; films with annotated "
          f"teeth answered edentulous {len(films['with_teeth_answered_edentulous'])} / {films['with_teeth']} "
          f"{films['with_teeth_answered_edentulous']}; refused {films['refused']}")
    print(f"  jaws without an annotated tooth called edentulous {jaws['called']} / "
          f"{jaws['annotated_edentulous']} "
          f"(not called: {jaws['edentulous_not_called']}); jaws with annotated teeth called edentulous "
          f"{len(jaws['with_teeth_called'])} / {jaws['with_teeth']} {jaws['with_teeth_called']}")
    sweep = ", ".join(f"{r['teeth_of_mass']}: {r['annotated_edentulous_called']} / {r['with_teeth_called']}"
                      for r in e["mass_sweep"])
    print(f"  at other thresholds (teeth of tooth mass: edentulous jaws called / jaws with teeth "
          f"called): {sweep}")


def print_scores(s: dict) -> None:
    if not s:
        return
    c = s["check_number"]
    print(f"scores of {s['teeth']} reported teeth ({s['right']} right: a tooth, right number): ECE score "
          f"{s['ece_score']:.4f} (raw {s['ece_raw']:.4f}), AUROC score {s['auroc_score']:.3f} (raw "
          f"{s['auroc_raw']:.3f}); check number: {c['flagged']} flagged, {c['flagged_wrong']} of them wrong; "
          f"{c['wrong_flagged']} of {c['wrong']} wrong teeth flagged")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """How the models run (as the service runs them by default), and the refinement model."""
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=PRECISIONS, default="int8",
                        help="worker.ort_precision: int8 runs the models' int8 copies where they have one")
    parser.add_argument("--refine-model", type=Path, default=ROOT / "models" / REFINE_MODEL,
                        help="per-tooth outline refinement (as the service runs it)")
    parser.add_argument("--no-refine", action="store_true", help="ablation: the whole-film outlines")


def engine_for(model_dir: Path, args: argparse.Namespace) -> Engine:
    """The model on ONNX Runtime as the worker loads it (checksums verified), at --threads and
    --precision."""
    return load_engine(model_dir, "onnxruntime", args.threads, args.precision)


def refine_extras(args: argparse.Namespace) -> dict[str, Engine]:
    """The refinement engine as the pipeline's extra model, unless --no-refine."""
    return {} if args.no_refine else {REFINE_MODEL: engine_for(args.refine_model, args)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", choices=["ufba425", "tufts"], default="ufba425",
                        help="shared set whose annotations.json and images/ are the defaults")
    parser.add_argument("--coco", type=Path, help="default: the dataset's annotations.json")
    parser.add_argument("--images", type=Path, help="default: the dataset's images/")
    parser.add_argument("--split", type=Path, help="JSON file with image-id lists, or a JSON list of ids")
    parser.add_argument("--split-key", default="val")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "pano-teeth")
    add_engine_arguments(parser)
    parser.add_argument("--no-renumber", action="store_true", help="ablation: keep the model's own numbers")
    parser.add_argument("--no-flip-tta", action="store_true", help="ablation: one pass, no mirrored pass")
    parser.add_argument("--no-sharp-borders", action="store_true",
                        help="ablation: borders between teeth at the model-pixel edge (1.0.0's outlines)")
    parser.add_argument("--min-score", type=float, default=PanoConfig.min_score,
                        help="teeth reported from this mean tooth probability (the pipeline's default)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--records", type=Path, help="JSON rows of the reported teeth (for calibrate.py)")
    parser.add_argument("--no-film-check", action="store_true",
                        help="ablation: no film check (a film without teeth is 12003, no edentulous call)")
    args = parser.parse_args()
    data = ROOT.parent / "shared" / "data" / "pano" / args.dataset
    args.coco = args.coco or data / "annotations.json"
    args.images = args.images or data / "images"
    ids = None
    if args.split:
        raw = json.loads(args.split.read_text())
        ids = raw if isinstance(raw, list) else raw[args.split_key]
    engine = engine_for(args.model, args)
    config = PanoConfig(renumber=not args.no_renumber, flip_tta=not args.no_flip_tta,
                        sharp_borders=not args.no_sharp_borders, min_score=args.min_score,
                        film_check=not args.no_film_check)
    pipeline = PanoPipeline(engine, config, refine_extras(args))
    report = evaluate(pipeline, json.loads(args.coco.read_text()), args.images, ids)
    print_table(report)
    records = report.pop("tooth_records")
    if args.records:
        args.records.write_text(json.dumps(records) + "\n")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
