import cv2
import numpy as np
import pytest

from pipelines.pano.outline import crop_box, model_to_input, outline


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


def test_border_between_teeth_follows_their_class_probabilities() -> None:
    # Two teeth side by side; their class probabilities cross half at model x = 209.9, so the argmax
    # masks part between columns 209 and 210 (the mask edge is 209.5).
    xs = np.arange(512, dtype=np.float32)
    p_left = np.clip(0.5 - (xs - 209.9) / 2.0, 0.0, 1.0)[None, :].repeat(256, 0)
    mask = np.zeros((256, 512), bool)
    mask[100:140, 200:210] = True
    others = np.zeros_like(mask)
    others[100:140, 210:222] = True
    foreground = (mask | others).astype(np.float32)
    x0, x1, y0, y1 = crop_box(mask)
    own = (p_left * foreground)[y0:y1, x0:x1]
    sharp = outline(mask, others, foreground, 8.0, 2.0, (4096, 512), own)
    plain = outline(mask, others, foreground, 8.0, 2.0, (4096, 512))
    assert sharp is not None and plain is not None
    # Model x -> input: (x + 0.5) * 8 - 0.5; 209.9 -> 1682.7, the mask edge 209.5 -> 1679.5.
    assert abs(max(p[0] for p in sharp.polygon) - 1682.7) < 1.0
    assert abs(max(p[0] for p in plain.polygon) - 1679.5) < 1.0


def test_same_class_neighbour_still_bounds_the_outline() -> None:
    # Two separate components of the same class (own probability high in both): the neighbour's
    # mask bounds the outline as before.
    mask = np.zeros((256, 512), bool)
    mask[100:140, 200:210] = True
    others = np.zeros_like(mask)
    others[100:140, 210:220] = True
    foreground = (mask | others).astype(np.float32)
    x0, x1, y0, y1 = crop_box(mask)
    own = foreground[y0:y1, x0:x1].copy()
    shape = outline(mask, others, foreground, 1.0, 2.0, (512, 512), own)
    assert shape is not None
    assert max(p[0] for p in shape.polygon) < 211
