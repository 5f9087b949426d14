"""Is this a panoramic radiograph? A model of what panoramic films look like at a glance, for the
films on which the tooth model finds too few teeth to say so itself.

Features of a film: its model input (the whole film stretched to 512 x 256, windowed and
standardised, `preprocess.prepare`) at 64 x 32, and the gradient magnitude of that input at the same
size (edges: the mandible's border, the palate, the rami), each standardised; 4,096 numbers. The
model is a probabilistic PCA of those features over the training panoramics of the three sets (and
augmented copies of them: gamma, zoom, shift, blur, as other devices' films differ): a film's score
is its negative log-likelihood per feature up to a constant, the Mahalanobis distance within the
first components plus the residual over the noise variance. A panoramic film scores about 1 (0.5-1.7),
a cephalogram 1.6-2.1, noise and shapes 2-2.4. The threshold (1.6) is a high quantile of the scores
of training films held out of the fit (five folds), so that it reflects films the model has not seen
(`pipelines/pano/evaluation/film_check_fit.py` fits it; the numbers are in manifest.json
`film_check`, the arrays in the file it names).

A second, plainer test: a radiograph has fine detail (trabecular bone, edges, noise), so a film whose
detail (the standard deviation of the standardised 256 x 128 input less its Gaussian blur, sigma 2)
is under half the least of any training panoramic's is refused too: smooth gradients and blurred
images that the layout model, broadened by blurred copies, might accept.

The pipeline applies it only to films with fewer than `min_teeth` teeth found: many teeth are
evidence of a panoramic of their own (no training cephalogram or generated image gave more than
six), and the layout model is weaker than the tooth model on devices it never saw (pano-teeth's card).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.manifest import check_sha256

MID_SIZE = (256, 128)  # width, height the model input is first reduced to (gradients are taken there)
THUMB_SIZE = (64, 32)
GRADIENT_SIGMA = 1.5
DETAIL_SIGMA = 2.0


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64).ravel()
    x -= x.mean()
    return x / max(float(x.std()), 1e-6)


def features(image: np.ndarray) -> np.ndarray:
    """The film's features (4,096 float64) from a 2-D image at the model's frame (the model input,
    or the windowed film resized to it: the features are standardised, so either gives the same)."""
    mid = cv2.resize(np.asarray(image, np.float32), MID_SIZE, interpolation=cv2.INTER_AREA)
    intensity = cv2.resize(mid, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    blur = cv2.GaussianBlur(mid, (0, 0), GRADIENT_SIGMA)
    grad = cv2.magnitude(cv2.Sobel(blur, cv2.CV_32F, 1, 0), cv2.Sobel(blur, cv2.CV_32F, 0, 1))
    gradient = cv2.resize(grad, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return np.concatenate([_standardise(intensity), _standardise(gradient)])


def detail(image: np.ndarray) -> float:
    """Fine detail of a 2-D image at the model's frame: the standard deviation of its standardised
    256 x 128 copy less that copy's Gaussian blur (0 for a smooth image, about 1 for white noise)."""
    mid = cv2.resize(np.asarray(image, np.float32), MID_SIZE, interpolation=cv2.INTER_AREA)
    mid = (mid - mid.mean()) / max(float(mid.std()), 1e-6)
    return float(np.std(mid - cv2.GaussianBlur(mid, (0, 0), DETAIL_SIGMA)))


@dataclass(frozen=True)
class LayoutModel:
    """Probabilistic PCA of the features: mean, first components (rows), their variances and the
    noise variance of the rest."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    noise_variance: float

    def score(self, x: np.ndarray) -> np.ndarray:
        """Negative log-likelihood per feature, up to a constant, of features (N, D) or (D,)."""
        x = np.atleast_2d(x) - self.mean
        coef = x @ self.components.T
        resid = ((x - coef @ self.components) ** 2).sum(axis=1)
        out = ((coef**2 / self.variances).sum(axis=1) + resid / self.noise_variance) / x.shape[1]
        return out

    @classmethod
    def fit(cls, x: np.ndarray, components: int, seed: int = 0) -> LayoutModel:
        """The first `components` by a randomised SVD (seeded, four power iterations: the exact
        SVD of a few thousand 4,096-long rows takes minutes), the noise variance from the rest of
        the total variance."""
        mean = x.mean(axis=0)
        xc = x - mean
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(xc @ rng.standard_normal((xc.shape[1], components + 16)))
        for _ in range(4):
            q, _ = np.linalg.qr(xc @ (xc.T @ q))
        _, s, vt = np.linalg.svd(q.T @ xc, full_matrices=False)
        n = max(len(x) - 1, 1)
        var = s[:components] ** 2 / n
        total = float((xc**2).sum()) / n
        noise = (total - float(var.sum())) / (x.shape[1] - components)
        return cls(mean, vt[:components].copy(), var.copy(), noise)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            mean=self.mean.astype(np.float32),
            components=self.components.astype(np.float32),
            variances=self.variances.astype(np.float64),
            noise_variance=np.float64(self.noise_variance),
        )

    @classmethod
    def load(cls, path: Path) -> LayoutModel:
        with np.load(path) as z:
            return cls(
                z["mean"].astype(np.float64),
                z["components"].astype(np.float64),
                z["variances"].astype(np.float64),
                float(z["noise_variance"]),
            )


@dataclass(frozen=True)
class FilmCheck:
    """The layout model with the threshold above which a film is not a panoramic, and the number of
    teeth from which the tooth model's own evidence is enough."""

    model: LayoutModel
    threshold: float
    min_teeth: int
    min_detail: float = 0.0

    def score(self, image: np.ndarray) -> float:
        return float(self.model.score(features(image))[0])

    def refusal(self, image: np.ndarray) -> str:
        """Why a film (its model input) is not a panoramic radiograph, or "" when it may be one."""
        fine = detail(image)
        if fine < self.min_detail:
            return (f"it has almost no fine detail (detail {fine:.3f}, panoramic films "
                    f"{self.min_detail:.3f} or more)")
        score = self.score(image)
        if score > self.threshold:
            return (
                f"its layout is unlike a panoramic's (film check score {score:.2f}, panoramic films up "
                f"to {self.threshold:.2f})"
            )
        return ""

    @classmethod
    def from_manifest(cls, directory: Path, raw: dict[str, Any] | None) -> FilmCheck | None:
        """The check a tooth model's manifest describes (`film_check`: file, sha256, threshold,
        min_teeth), its file verified; None when the manifest has none."""
        if not raw:
            return None
        path = directory / str(raw["file"])
        check_sha256(path, str(raw["sha256"]))
        return cls(
            LayoutModel.load(path),
            float(raw["threshold"]),
            int(raw["min_teeth"]),
            float(raw.get("min_detail", 0.0)),
        )
