"""pipelines/calibration.py: Platt scaling, its manifest form, cross-fitting by film, ECE and AUROC."""

import numpy as np
import pytest

from pipelines.calibration import Calibrator, auroc, cross_fitted, ece, folds_by_group, reliability


def simulated(n: int = 4000, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rows whose truth follows P(right) = sigmoid(-1 + 1.5 logit(a) + 0.8 log(b))."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.05, 0.95, n), rng.uniform(1, 200, n)
    z = -1 + 1.5 * np.log(a / (1 - a)) + 0.8 * np.log(b)
    return {"a": a, "b": b}, rng.random(n) < 1 / (1 + np.exp(-z))


def test_fit_recovers_the_model_and_round_trips_through_the_manifest() -> None:
    rows, right = simulated()
    cal = Calibrator.fit(rows, right, ("a", "b"), ("logit", "log"), l2=0.0)
    assert cal.coef == pytest.approx((1.5, 0.8), abs=0.15) and cal.intercept == pytest.approx(-1, abs=0.4)
    again = Calibrator.from_manifest(cal.to_manifest())
    assert again.features == ("a", "b") and again.transforms == ("logit", "log")
    assert again(a=0.7, b=20.0) == pytest.approx(cal(a=0.7, b=20.0), abs=1e-5)
    assert Calibrator.from_manifest(None) is None and Calibrator.from_manifest({}) is None
    with pytest.raises(ValueError):
        Calibrator.from_manifest({**cal.to_manifest(), "method": "isotonic"})


def test_calibrated_scores_have_a_small_ece_and_a_constant_score_separates_nothing() -> None:
    rows, right = simulated()
    p = cross_fitted(rows, right, np.arange(len(right)) // 40, ("a", "b"), ("logit", "log"), k=5)
    assert ece(p, right) < 0.03
    assert auroc(p, right) > 0.75
    constant = np.full(len(right), 0.95)
    assert auroc(constant, right) == pytest.approx(0.5)
    assert ece(constant, right) == pytest.approx(abs(0.95 - right.mean()))
    table = reliability(p, right)
    assert sum(r["n"] for r in table) == len(right) and len(table) == 10


def test_auroc_counts_pairs_and_ties() -> None:
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert np.isnan(auroc([0.5], [True]))


def test_cross_fitting_keeps_a_film_out_of_its_own_calibrator() -> None:
    groups = ["f1", "f1", "f2", "f3", "f3", "f4", "f5", "f6"]
    folds = folds_by_group(groups, 3)
    assert folds[0] == folds[1] and folds[3] == folds[4] and set(folds) == {0, 1, 2}
    # One film whose rows are all wrong, the rest all right: its own rows, scored without it, look
    # like the others'.
    rows = {"a": np.full(60, 0.9)}
    right = np.array([False] * 10 + [True] * 50)
    films = ["bad"] * 10 + [f"good{k}" for k in range(50)]
    p = cross_fitted(rows, right, films, ("a",), ("logit",), k=5)
    assert p[:10].min() > 0.9
