"""The whole pipeline, through ONNX Runtime and the shipped model, on real radiographs.

Needs ../shared/data (skipped with a message when absent) and models/pano-teeth/model.onnx.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pano_helpers import DATA, MODEL_DIR

from dentalai.v1 import results_pb2, task_pb2
from pipelines.base_pipeline import DecodedImage, StageTimer
from pipelines.pano import PanoPipeline
from pipelines.pano.numbering import PERMANENT_FDI

UFBA = DATA / "pano" / "ufba425"
DC1000 = DATA / "pano" / "dc1000_caries" / "images"
SPLIT = Path(__file__).resolve().parents[2] / "training" / "pano" / "split.json"


@pytest.fixture(scope="module")
def pipeline() -> PanoPipeline:
    if not (MODEL_DIR / "model.onnx").exists():
        pytest.skip(f"no exported model at {MODEL_DIR} (run training.pano.export)")
    from engines.manifest import ModelManifest
    from engines.onnxruntime_engine import OnnxRuntimeEngine

    manifest = ModelManifest.load(MODEL_DIR)
    manifest.verify_checksum()
    return PanoPipeline(OnnxRuntimeEngine(manifest, intra_threads=1))


def check_result(result: results_pb2.PanoResult, width: int, height: int) -> None:
    fdis = [t.fdi for t in result.teeth]
    assert len(fdis) == len(set(fdis)), "one tooth per FDI number"
    assert set(fdis) <= set(PERMANENT_FDI)
    assert sorted(set(fdis) | set(result.missing_teeth)) == list(PERMANENT_FDI)
    assert result.summary.tooth_count == len(fdis)
    for tooth in result.teeth:
        pts = np.array([[c.number_value for c in p.list_value.values] for p in tooth.polygon.values])
        assert pts.shape[1] == 2 and len(pts) >= 3
        assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= width - 1
        assert pts[:, 1].min() >= 0 and pts[:, 1].max() <= height - 1
        assert 0 < tooth.score <= 1 and tooth.area_px > 0


def test_ufba_validation_image(pipeline: PanoPipeline) -> None:
    if not UFBA.exists():
        pytest.skip(f"shared data absent: {UFBA}")
    coco = json.loads((UFBA / "annotations.json").read_text())
    val_id = json.loads(SPLIT.read_text())["val"][0]
    info = next(im for im in coco["images"] if im["id"] == val_id)
    pixels = cv2.imread(str(UFBA / "images" / info["file_name"]), cv2.IMREAD_GRAYSCALE)
    result = pipeline.run(DecodedImage(pixels), task_pb2.AnalysisOptions())
    check_result(result, 512, 512)
    truth = {a["category_id"] for a in coco["annotations"] if a["image_id"] == val_id}
    found = {t.fdi for t in result.teeth}
    assert len(found & truth) >= 0.7 * len(truth)


def test_full_size_panoramic(pipeline: PanoPipeline) -> None:
    if not DC1000.exists():
        pytest.skip(f"shared data absent: {DC1000}")
    path = sorted(DC1000.glob("*.jpg"))[0]
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert pixels.shape == (1435, 2943)
    timer = StageTimer()
    options = task_pb2.AnalysisOptions(tooth_numbering=results_pb2.UNIVERSAL)
    result = pipeline.run(DecodedImage(pixels), options, timer)
    assert result.numbering == results_pb2.UNIVERSAL
    assert result.image.width == 2943 and result.image.height == 1435
    check_fdi = [t.fdi for t in result.teeth]
    assert len(check_fdi) >= 10
    for tooth in result.teeth:
        pts = np.array([[c.number_value for c in p.list_value.values] for p in tooth.polygon.values])
        assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= 2942 and pts[:, 1].max() <= 1434
        # Teeth of a 2943 px wide panoramic are tens to a few hundred pixels wide.
        assert 20 < tooth.bbox[2] < 600 and 80 < tooth.bbox[3] < 900
    assert sum(timer.stages_ms.values()) < 10_000
