import cv2
import numpy as np
import pytest

from pipelines.pano.outline import model_to_input, outline


def ellipse(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    """Boolean ellipse drawn at sub-pixel precision."""
    mask = np.zeros(shape, np.uint8)
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (int(round(axes[0] * 16)), int(round(axes[1] * 16)))
    cv2.ellipse(mask, c, a, 0, 0, 360, 1, -1, shift=4)
    return mask.astype(bool)


@pytest.mark.parametrize(("width", "height"), [(2943, 1435), (512, 512), (512, 256)])
def test_polygon_round_trip_to_input_coordinates(width: int, height: int) -> None:
    h, w = 256, 512
    sx, sy = width / w, height / h
    # The same tooth-shaped ellipse drawn in input pixels and in model pixels (pixel centres mapped).
    centre_in, axes_in = (0.4 * width, 0.45 * height), (0.012 * width, 0.09 * height)
    centre_model = ((centre_in[0] + 0.5) / sx - 0.5, (centre_in[1] + 0.5) / sy - 0.5)
    truth_model = ellipse((h, w), centre_model, (axes_in[0] / sx, axes_in[1] / sy))
    truth_input = ellipse((height, width), centre_in, axes_in)
    foreground = truth_model.astype(np.float32)
    shape = outline(truth_model, np.zeros_like(truth_model), foreground, sx, sy, (width, height))
    assert shape is not None
    drawn = np.zeros((height, width), np.uint8)
    cv2.fillPoly(drawn, [np.round(np.asarray(shape.polygon) * 8).astype(np.int32)], 1, shift=3)
    inter = (drawn.astype(bool) & truth_input).sum()
    iou = inter / (drawn.astype(bool) | truth_input).sum()
    assert iou > 0.8, iou
    x, y, bw, bh = shape.bbox
    assert abs((x + bw / 2) - centre_in[0]) < 2 * sx and abs((y + bh / 2) - centre_in[1]) < 2 * sy
    assert shape.area_px == pytest.approx(truth_input.sum(), rel=0.2)
    pts = np.asarray(shape.polygon)
    assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= width - 1
    assert pts[:, 1].min() >= 0 and pts[:, 1].max() <= height - 1


def test_neighbouring_tooth_limits_the_outline() -> None:
    mask = np.zeros((256, 512), bool)
    mask[100:140, 200:210] = True
    others = np.zeros_like(mask)
    others[100:140, 210:220] = True
    foreground = (mask | others).astype(np.float32)
    shape = outline(mask, others, foreground, 1.0, 2.0, (512, 512))
    assert shape is not None
    assert max(p[0] for p in shape.polygon) < 211


def test_pixel_centre_mapping() -> None:
    assert model_to_input(np.array([0.0]), 2.0)[0] == 0.5
    assert model_to_input(np.array([-0.5]), 5.0)[0] == -0.5
