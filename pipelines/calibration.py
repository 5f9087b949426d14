"""Calibrated scores: a model's raw outputs turned into the probability that a result is right, and
the measures that say how well that worked (numpy only; the service and the evaluation scripts share
it).

A calibrator is Platt scaling over one or a few named features of a result (a tooth's mean tooth
probability and the share of it on its number; a lesion's peak probability and area), each through
a fixed transform (logit, log), fitted by L2-regularised logistic regression; with no feature it is
a constant, the share of right results it was fitted on. It is stored in the
model's manifest as a small table (`calibration`): the features, their transforms, the coefficients
and how it was fitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-4
TRANSFORMS = ("logit", "log", "identity")


def transform(kind: str, x: np.ndarray | float) -> np.ndarray:
    v = np.asarray(x, np.float64)
    if kind == "logit":
        v = np.clip(v, EPS, 1 - EPS)
        return np.log(v / (1 - v))
    if kind == "log":
        return np.log(np.maximum(v, EPS))
    if kind == "identity":
        return v
    raise ValueError(f"unknown transform {kind!r}, one of {TRANSFORMS}")


@dataclass(frozen=True)
class Calibrator:
    """P(right) = sigmoid(intercept + sum coef_k * transform_k(feature_k))."""

    features: tuple[str, ...]
    transforms: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float

    def design(self, rows: Mapping[str, Sequence[float]]) -> np.ndarray:
        """(N, K) transformed features of columns `rows[name]` (K may be 0: a constant probability)."""
        n = len(next(iter(rows.values()))) if rows else 1
        cols = [transform(t, rows[f]) for f, t in zip(self.features, self.transforms, strict=True)]
        return np.column_stack(cols) if cols else np.zeros((n, 0))

    def probabilities(self, rows: Mapping[str, Sequence[float]]) -> np.ndarray:
        z = self.design(rows) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def __call__(self, **values: float) -> float:
        return float(self.probabilities({k: [v] for k, v in values.items()})[0])

    def to_manifest(self) -> dict[str, Any]:
        return {
            "method": "platt",
            "features": [
                {"name": f, "transform": t} for f, t in zip(self.features, self.transforms, strict=True)
            ],
            "coef": [round(c, 6) for c in self.coef],
            "intercept": round(self.intercept, 6),
        }

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any] | None) -> Calibrator | None:
        if not raw:
            return None
        if raw.get("method") != "platt":
            raise ValueError(f"calibration method {raw.get('method')!r}: only 'platt' is known")
        feats = raw["features"]
        for f in feats:
            if f["transform"] not in TRANSFORMS:
                raise ValueError(f"calibration transform {f['transform']!r}, one of {TRANSFORMS}")
        coef = tuple(float(c) for c in raw["coef"])
        if len(coef) != len(feats):
            raise ValueError(f"calibration has {len(feats)} features and {len(coef)} coefficients")
        return cls(
            tuple(str(f["name"]) for f in feats),
            tuple(str(f["transform"]) for f in feats),
            coef,
            float(raw["intercept"]),
        )

    @classmethod
    def fit(
        cls,
        rows: Mapping[str, Sequence[float]],
        right: Sequence[bool],
        features: Sequence[str],
        transforms: Sequence[str],
        l2: float = 1.0,
    ) -> Calibrator:
        """Logistic regression of `right` on the transformed features (L2 on the coefficients, not
        the intercept; Newton's method)."""
        shell = cls(tuple(features), tuple(transforms), (0.0,) * len(features), 0.0)
        x = np.column_stack([shell.design(rows), np.ones(len(right))])
        y = np.asarray(right, np.float64)
        b = np.zeros(x.shape[1])
        b[-1] = np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3))
        penalty = np.full(x.shape[1], l2)
        penalty[-1] = 0.0
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-x @ b))
            grad = x.T @ (p - y) + penalty * b
            hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(len(b))
            step = np.linalg.solve(hess, grad)
            b -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(tuple(features), tuple(transforms), tuple(float(v) for v in b[:-1]), float(b[-1]))


def folds_by_group(groups: Sequence[Any], k: int) -> np.ndarray:
    """Fold index (0..k-1) of each row: whole groups (films) in one fold, dealt in sorted order."""
    keys = sorted(set(groups), key=str)
    fold_of = {g: i % k for i, g in enumerate(keys)}
    return np.array([fold_of[g] for g in groups])


def cross_fitted(
    rows: Mapping[str, Sequence[float]],
    right: Sequence[bool],
    groups: Sequence[Any],
    features: Sequence[str],
    transforms: Sequence[str],
    k: int = 5,
    l2: float = 1.0,
) -> np.ndarray:
    """Each row's probability from a calibrator fitted on the other folds' films only."""
    fold = folds_by_group(groups, k)
    out = np.zeros(len(right))
    y = np.asarray(right, bool)
    cols = {name: np.asarray(v, np.float64) for name, v in rows.items()}
    for f in range(k):
        train, test = fold != f, fold == f
        if not test.any():
            continue
        cal = Calibrator.fit({n: c[train] for n, c in cols.items()}, y[train], features, transforms, l2)
        out[test] = cal.probabilities({n: c[test] for n, c in cols.items()})
    return out


def reliability(p: Sequence[float], right: Sequence[bool], bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of the score: count, mean score, share right."""
    p, y = np.asarray(p, np.float64), np.asarray(right, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        out.append(
            {
                "low": round(float(edges[b]), 2),
                "high": round(float(edges[b + 1]), 2),
                "n": int(sel.sum()),
                "mean_score": float(p[sel].mean()) if sel.any() else 0.0,
                "share_right": float(y[sel].mean()) if sel.any() else 0.0,
            }
        )
    return out


def ece(p: Sequence[float], right: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |share right - mean score| over the bins."""
    table = reliability(p, right, bins)
    n = sum(r["n"] for r in table)
    return sum(r["n"] * abs(r["share_right"] - r["mean_score"]) for r in table) / max(n, 1)


def auroc(p: Sequence[float], right: Sequence[bool]) -> float:
    """Area under the ROC curve of the score for right against wrong (ties count half); nan when
    either class is empty."""
    p, y = np.asarray(p, np.float64), np.asarray(right, bool)
    pos, neg = p[y], p[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(values))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
