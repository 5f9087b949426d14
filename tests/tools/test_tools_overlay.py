"""The overlay really draws where the result says: pixels change at landmarks and tooth outlines."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sample_results import CEPH_POINTS, as_message, ceph_result, pano_result

from dentalai import overlay


def _gray(w: int, h: int) -> np.ndarray:
    return np.full((h, w), 40, dtype=np.uint8)


def _nearest_quadrant(pixel: np.ndarray) -> int:
    """The quadrant whose colour is closest (outlines are anti-aliased, so not exact)."""
    dist = {q: np.abs(pixel.astype(int) - c).sum() for q, c in overlay.QUADRANT_COLOURS.items()}
    return min(dist, key=dist.get)


@pytest.mark.parametrize("as_msg", [False, True], ids=["dict", "message"])
def test_ceph_landmarks_and_lines_are_drawn(as_msg):
    data = ceph_result()
    image = _gray(640, 800)
    out = overlay.render(image, as_message(data) if as_msg else data)
    assert out.shape == (800, 640, 3) and out.dtype == np.uint8
    for x, y in CEPH_POINTS.values():
        assert not np.array_equal(out[y, x], [40, 40, 40]), f"nothing drawn at landmark ({x}, {y})"
    # Midpoint of S-N is on the S-N line, far from any landmark.
    (sx, sy), (nx, ny) = CEPH_POINTS["S"], CEPH_POINTS["N"]
    assert tuple(out[(sy + ny) // 2, (sx + nx) // 2]) == overlay.CEPH_LINES[0][3]
    # A corner far from all points stays untouched.
    assert np.array_equal(out[790, 630], [40, 40, 40])


def test_pano_outlines_coloured_by_quadrant():
    data = pano_result()
    out = overlay.render(_gray(512, 512), data)
    for tooth in data["teeth"]:
        x, y, w, h = (int(v) for v in tooth["bbox"])
        # Left edge a third of the way down: only the outline is there.
        pixel = out[y + h // 3, x]
        assert not np.array_equal(pixel, [40, 40, 40])
        assert _nearest_quadrant(pixel) == tooth["fdi"] // 10
    assert np.array_equal(out[500, 500], [40, 40, 40])


def test_coordinates_scale_to_a_resized_image():
    data = pano_result()
    out = overlay.render(_gray(256, 256), data)  # half size of result.image
    x, y, w, h = (int(v) for v in data["teeth"][0]["bbox"])
    assert _nearest_quadrant(out[(y + h // 3) // 2, x // 2]) == 1
    assert np.array_equal(out[(y + h // 3), x], [40, 40, 40])  # not where it was at full size


def test_unwraps_task_and_envelope_and_encodes_png():
    env = {"code": 0, "message": "ok", "data": {"taskId": "t", "status": "SUCCEEDED", "ceph": ceph_result()}}
    png = overlay.render_png(np.zeros((800, 640), dtype=np.uint16), env)
    img = Image.open(io.BytesIO(png))
    assert img.size == (640, 800) and img.mode == "RGB"


def test_rejects_data_without_result():
    with pytest.raises(ValueError):
        overlay.render(_gray(10, 10), {"foo": 1})


def test_occlusal_plane_lies_between_palatal_and_mandibular_planes():
    centre, direction = overlay.occlusal_plane(CEPH_POINTS)
    assert np.allclose(centre, [482.5, 527.5])
    assert direction[0] > 0.9  # runs front-to-back, nearly horizontal


def test_dicom_monochrome1_is_inverted_for_display(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    pixels = np.zeros((20, 30), dtype=np.uint16)
    pixels[:, :10] = 1000
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    shown = overlay.load_image(path)
    assert shown.shape == (20, 30)
    assert shown[0, 0] < shown[0, 20]  # MONOCHROME1: high values are dark
    assert overlay.to_rgb(shown)[0, 20].tolist() == [255, 255, 255]
