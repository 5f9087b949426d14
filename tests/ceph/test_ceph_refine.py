"""Stage 2's geometry (pipelines/ceph/refine.py) and the two-stage pipeline with fake engines."""

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pytest
from ceph_helpers import FakeEngine, manifest, marked_image
from test_ceph_pipeline_fake import expected_image_points, skull_in_heatmap

from dentalai.v1 import task_pb2
from engines.manifest import TensorSpec
from pipelines.base_pipeline import DecodedImage
from pipelines.ceph import refine
from pipelines.ceph.pipeline import REFINE_MODEL, CephPipeline
from pipelines.ceph.preprocess import NUM_LANDMARKS

HP = refine.PATCH // refine.PATCH_STRIDE


def peak_at(points_hm: np.ndarray, peak: float = 0.8) -> np.ndarray:
    """(K, 2) heatmap positions -> (K, K, HP, HP) with channel k of row k peaked at point k."""
    ys, xs = np.mgrid[0:HP, 0:HP].astype(np.float32)
    out = np.zeros((len(points_hm), NUM_LANDMARKS, HP, HP), np.float32)
    for k, (x, y) in enumerate(points_hm):
        out[k, k] = peak * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    return out


def test_patch_matrix_puts_the_centre_in_the_middle_and_inverts() -> None:
    centre = np.array([123.4, 567.8])
    for angle, scale in ((0.0, 1.0), (8.0, 1.1), (-10.0, 0.9)):
        m = refine.patch_matrix(centre, angle, scale)
        mid = (refine.PATCH - 1) / 2
        np.testing.assert_allclose(m[:, :2] @ centre + m[:, 2], [mid, mid], atol=1e-9)
        # A point 5 px right of the centre lands 5*scale px away, turned by the angle.
        p = m[:, :2] @ (centre + [5.0, 0.0]) + m[:, 2]
        assert np.hypot(*(p - mid)) == pytest.approx(5 * scale)


def test_cut_samples_the_frame_at_the_patch_positions() -> None:
    frame = np.zeros((refine.REF_HEIGHT, refine.REF_WIDTH), np.uint8)
    frame[400, 300] = 255  # one bright pixel
    m = refine.patch_matrix(np.array([290.0, 395.0]))
    crop = refine.cut(frame, m)
    y, x = np.unravel_index(crop.argmax(), crop.shape)
    np.testing.assert_allclose([x, y], m[:, :2] @ [300, 400] + m[:, 2], atol=0.51)


def test_decode_maps_own_channel_peaks_back_to_frame_pixels() -> None:
    rng = np.random.default_rng(1)
    centres = rng.uniform(100, 500, (NUM_LANDMARKS, 2))
    truth = centres + rng.uniform(-8, 8, centres.shape)  # where each landmark really is
    _, mats = refine.patches(np.zeros((refine.REF_HEIGHT, refine.REF_WIDTH), np.uint8), centres)
    in_patch = np.stack([m[:, :2] @ t + m[:, 2] for m, t in zip(mats, truth, strict=True)])
    heat = peak_at((in_patch + 0.5) / refine.PATCH_STRIDE - 0.5)
    # Distractors in the other channels must not be read.
    heat[:, (np.arange(NUM_LANDMARKS) + 1) % NUM_LANDMARKS] += 0.95
    got, peaks = refine.decode(heat, mats)
    np.testing.assert_allclose(got, truth, atol=0.15)
    assert np.all(peaks > 0.7)


class FakeRefine:
    """Stage 2 that sees each landmark `shift` frame pixels from the patch centre."""

    runtime = "fake"

    def __init__(self, shift: tuple[float, float]) -> None:
        base = manifest()
        self.manifest = replace(
            base,
            name=REFINE_MODEL,
            inputs=(TensorSpec("patches", "float32", ("batch", 1, refine.PATCH, refine.PATCH)),),
            outputs=(TensorSpec("heatmaps", "float32", ("batch", NUM_LANDMARKS, HP, HP)),),
        )
        self.shift = np.asarray(shift)
        self.batches: list[tuple[int, ...]] = []

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        patches = inputs["patches"]
        self.batches.append(patches.shape)
        mid = (refine.PATCH - 1) / 2 + self.shift
        pos = np.tile((mid + 0.5) / refine.PATCH_STRIDE - 0.5, (len(patches), 1))
        return {"heatmaps": peak_at(pos)}

    def warmup(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize("mirrored", [False, True])
def test_two_stages_move_each_landmark_by_what_stage_two_sees(mirrored: bool) -> None:
    w, h = 1000, 1250
    stage1 = expected_image_points(skull_in_heatmap(), w, h)
    shift = (4.0, -3.0)  # frame pixels, in the face-right view
    refine_engine = FakeRefine(shift)
    pipe = CephPipeline(FakeEngine(skull_in_heatmap()), extras={REFINE_MODEL: refine_engine})
    img = marked_image(w, h)
    if mirrored:
        img = np.ascontiguousarray(img[:, ::-1])
    result = pipe.run(DecodedImage(pixels=img), task_pb2.AnalysisOptions(pixel_spacing_mm=0.1))
    got = np.array([[lm.x, lm.y] for lm in result.landmarks])
    conf = np.array([lm.confidence for lm in result.landmarks])
    # Stage 2 moves each point as far as its peak is certain (refine.blend).
    want = stage1 + conf[:, None] * np.array(shift) * [w / refine.REF_WIDTH, h / refine.REF_HEIGHT]
    if mirrored:  # a left-facing face: stage 2's forward shift is backwards in image pixels
        want[:, 0] = (w - 1) - want[:, 0]
    np.testing.assert_allclose(got, want, atol=0.6)
    # All 19 patches in one batched call; confidences are stage 2's peaks.
    assert refine_engine.batches == [(NUM_LANDMARKS, 1, refine.PATCH, refine.PATCH)]
    assert all(0.7 <= lm.confidence <= 0.8 for lm in result.landmarks)
    assert [(c.name, c.version) for c in pipe.model_info.components] == [(REFINE_MODEL, "test")]


def test_blend_moves_as_far_as_stage_two_is_certain() -> None:
    s1 = np.array([[10.0, 10.0], [10.0, 10.0], [10.0, 10.0]])
    s2 = np.array([[20.0, 10.0], [20.0, 10.0], [20.0, 10.0]])
    got = refine.blend(s1, s2, np.array([1.0, 0.25, -0.5]))
    np.testing.assert_allclose(got, [[20.0, 10.0], [12.5, 10.0], [10.0, 10.0]])
