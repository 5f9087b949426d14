"""compare and visualize on hand-made results and annotations in the shared/data formats."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sample_results import CEPH_IDS, CEPH_POINTS, ceph_result, pano_result, tooth

from tools import compare, visualize
from tools.annotations import CEPH_LANDMARKS, load


def _write_results(folder, results):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in results.items():
        (folder / f"{stem}.json").write_text(json.dumps(data))
    return folder


def _write_ceph_csv(path, shift_by_annotator):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "annotator"] + [f"{c}_{a}" for _, c in CEPH_LANDMARKS for a in "xy"])
        for annotator, shift in shift_by_annotator.items():
            values = [v for lid in CEPH_IDS for v in (CEPH_POINTS[lid][0] + shift, CEPH_POINTS[lid][1])]
            writer.writerow(["001", annotator] + [f"{v:.2f}" for v in values])
    return path


def test_ceph_results_against_two_annotator_csv(tmp_path, capsys):
    results = _write_results(tmp_path / "out", {"001": ceph_result(shift=3.0)})
    # Mean of the annotators is shift 2: every landmark is 1 px off, 0.1 mm at 0.1 mm/px.
    ref = _write_ceph_csv(tmp_path / "landmarks.csv", {"senior": 1.0, "junior": 3.0})
    report = compare.compare(load(results), load(ref), spacing=None)
    assert [r["image"] for r in report.per_image] == ["001"]
    assert report.per_image[0]["mre_px"] == pytest.approx(1.0)
    assert report.per_image[0]["mre_mm"] == pytest.approx(0.1)
    assert report.per_image[0]["sdr_2mm"] == 1.0
    assert {r["id"] for r in report.per_item} == set(CEPH_IDS)
    # One annotator only.
    junior = compare.compare(load(results), load(ref, "junior"), spacing=(0.3, 0.3))
    assert junior.per_image[0]["mre_px"] == pytest.approx(0.0)

    assert compare.main([str(results), str(ref), "--csv-dir", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert "per landmark" in printed and "SoftPog" in printed
    rows = list(csv.DictReader((tmp_path / "rep" / "details.csv").open()))
    assert len(rows) == 19 and float(rows[0]["error_px"]) == pytest.approx(1.0)


def test_pano_results_against_coco(tmp_path):
    result = pano_result()
    result["teeth"][0] = tooth(11, 220 + 15, 150)  # half overlap: IoU 1/3
    del result["teeth"][3]  # 41 missed
    result["teeth"].append(tooth(48, 400, 300))  # extra
    results = _write_results(tmp_path / "out", {"cate1-00002": result})
    coco = {
        "images": [{"id": 7, "file_name": "cate1-00002.jpg", "width": 512, "height": 512}],
        "annotations": [
            {
                "id": i,
                "image_id": 7,
                "category_id": t["fdi"],
                "bbox": t["bbox"],
                "segmentation": [[c for p in t["polygon"] for c in p]],
                "area": t["areaPx"],
                "iscrowd": 0,
            }
            for i, t in enumerate(pano_result()["teeth"])
        ],  # fmt: skip
        "categories": [{"id": n, "name": str(n)} for n in (11, 21, 31, 41)],
    }
    ref = tmp_path / "annotations.json"
    ref.write_text(json.dumps(coco))
    report = compare.compare(load(results), load(ref))
    image = report.per_image[0]
    assert (image["matched"], image["missed"], image["extra"]) == (3, 1, 1)
    by_id = {d["id"]: d for d in report.details}
    assert by_id[11]["iou"] == pytest.approx(1 / 3, abs=0.03)
    assert by_id[21]["iou"] == pytest.approx(1.0)
    assert by_id[41]["status"] == "missed" and by_id[48]["status"] == "extra"


def test_two_result_folders(tmp_path):
    a = _write_results(tmp_path / "a", {"x": ceph_result(), "only_a": ceph_result()})
    b = _write_results(tmp_path / "b", {"x": ceph_result(shift=4.0)})
    report = compare.compare(load(a), load(b))
    assert report.per_image[0]["mre_px"] == pytest.approx(4.0)
    assert report.unmatched == ["only_a"]


def test_mixed_kinds_are_refused(tmp_path):
    a = _write_results(tmp_path / "a", {"x": ceph_result()})
    b = _write_results(tmp_path / "b", {"x": pano_result()})
    assert compare.main([str(a), str(b)]) == 2


def test_visualize_writes_overlay(tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.full((512, 512), 30, dtype=np.uint8)).save(image)
    result = _write_results(tmp_path, {"x": pano_result()}) / "x.json"
    out = tmp_path / "overlay.png"
    assert visualize.main([str(result), str(image), "-o", str(out)]) == 0
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (512, 512, 3) and (drawn != 30).any()
