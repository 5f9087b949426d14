"""Instance extraction: the fast argmax and component boxes give what the plain numpy versions give."""

import numpy as np

from pipelines.pano.instances import argmax_channels, extract
from pipelines.pano.numbering import CLASS_FDI


def test_argmax_channels_matches_numpy_including_ties() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random((53, 32, 64)).astype(np.float32)
    probs[7, :4] = probs[30, :4] = 2.0  # ties: the first channel wins, as in numpy
    probs[0, 4:6] = 3.0
    np.testing.assert_array_equal(argmax_channels(probs), probs.argmax(axis=0))


def test_components_have_their_own_box_area_and_mean_probability() -> None:
    probs = np.zeros((5, 40, 80), np.float32)
    probs[0] = 1.0
    # Class 2: two separate blobs; class 3: one L-shaped blob.
    for (y0, y1, x0, x1), c in (((5, 15, 5, 12), 2), ((20, 35, 60, 70), 2), ((5, 30, 30, 34), 3),
                                ((26, 30, 34, 44), 3)):
        probs[:, y0:y1, x0:x1] = 0.0
        probs[c, y0:y1, x0:x1] = 0.9
        probs[1, y0:y1, x0:x1] = 0.1
    found = sorted(extract(probs), key=lambda i: (i.label, i.cx))
    assert [(i.label, i.box, i.area) for i in found] == [
        (2, (5, 5, 7, 10), 70), (2, (60, 20, 10, 15), 150), (3, (30, 5, 14, 25), 140)]
    for inst in found:
        ys, xs = np.nonzero(inst.mask)
        assert inst.area == len(xs) and abs(inst.cx - xs.mean()) < 1e-9 and abs(inst.cy - ys.mean()) < 1e-9
        np.testing.assert_allclose(inst.probs, probs[:, inst.mask].mean(axis=1), atol=1e-6)


def _paint(probs: np.ndarray, fdi: int, y0: int, y1: int, x0: int, x1: int) -> None:
    probs[:, y0:y1, x0:x1] = 0.0
    probs[CLASS_FDI.index(fdi), y0:y1, x0:x1] = 1.0


def test_a_small_piece_of_another_label_joins_its_tooth_but_a_small_tooth_stays_itself() -> None:
    probs = np.zeros((len(CLASS_FDI), 64, 200), np.float32)
    probs[0] = 1.0
    for fdi, x0 in ((36, 10), (37, 60), (46, 110)):  # molars: 40 x 30, apart
        _paint(probs, fdi, 10, 50, x0, x0 + 30)
    _paint(probs, 37, 10, 20, 40, 50)  # a 10 x 10 corner of 36 read as 37, touching 36 only
    # Two lower central incisors side by side, each under half the median tooth's area.
    _paint(probs, 41, 10, 45, 150, 160)
    _paint(probs, 31, 10, 45, 160, 171)
    found = sorted(extract(probs), key=lambda i: i.cx)
    assert [CLASS_FDI[i.label] for i in found] == [36, 37, 46, 41, 31]
    assert found[0].area == 40 * 30 + 10 * 10  # the corner joined 36


def test_a_piece_merged_into_a_tooth_does_not_make_its_next_neighbour_a_piece_too() -> None:
    """Lower incisors beside a canine: 32, shorter than 0.8 of 33, joins it; 31 is as big and tall
    as a tooth beside 33 itself, and stays one although it is small beside 33 and 32 together."""
    probs = np.zeros((len(CLASS_FDI), 64, 200), np.float32)
    probs[0] = 1.0
    for fdi, x0 in ((36, 10), (37, 45), (46, 80)):  # molars set the median: 40 x 30
        _paint(probs, fdi, 10, 50, x0, x0 + 30)
    _paint(probs, 33, 10, 50, 120, 134)  # canine 40 x 14
    _paint(probs, 32, 10, 40, 134, 144)  # 30 x 10: under 0.8 of the canine's height
    _paint(probs, 31, 10, 45, 144, 153)  # 35 x 9: half the canine's area, 0.88 of its height
    found = sorted(extract(probs), key=lambda i: i.cx)
    assert [CLASS_FDI[i.label] for i in found] == [36, 37, 46, 33, 31]
    assert found[3].area == 40 * 14 + 30 * 10
