"""Images that are not radiographs, made in code (seeded, so every run sees the same ones), for the
checks that must refuse them (11003) and for the tests: noise, natural-image-like 1/f noise, smooth
gradients, a checkerboard, flat shapes, a page of text, a blank and a black frame; `photos()` adds
the few photographs that ship with Gradio (the UI's dependency) when it is installed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

KINDS = (
    "uniform noise",
    "gaussian noise",
    "pink noise",
    "horizontal gradient",
    "radial gradient",
    "checkerboard",
    "shapes",
    "text page",
    "blank",
    "black",
)
# Kinds whose variants `random_images` draws (blank and black frames are always the same).
VARIED = KINDS[:8]


def image(kind: str, width: int = 2000, height: int = 1000, seed: int = 0) -> np.ndarray:
    """One uint8 gray image of `kind` (KINDS)."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    if kind == "uniform noise":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "gaussian noise":
        return np.clip(rng.normal(128, 40, (h, w)), 0, 255).astype(np.uint8)
    if kind == "pink noise":  # amplitude 1/f: the statistics of natural images
        fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
        amplitude = 1 / np.maximum(np.hypot(fy, fx), 1 / max(h, w))
        noise = np.fft.irfft2(amplitude * np.exp(2j * np.pi * rng.random(amplitude.shape)), s=(h, w))
        return ((noise - noise.min()) / max(float(np.ptp(noise)), 1e-9) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if kind == "horizontal gradient":
        return (xx / xx.max() * 255).astype(np.uint8)
    if kind == "radial gradient":
        r = np.hypot(xx - xx.mean(), yy - yy.mean())
        return (np.clip(1 - 2 * r, 0, 1) * 255).astype(np.uint8)
    if kind == "checkerboard":
        return (((xx * 20).astype(int) + (yy * 20).astype(int)) % 2 * 255).astype(np.uint8)
    if kind == "shapes":
        out = np.full((h, w), 40, np.uint8)
        for _ in range(30):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            value = int(rng.integers(60, 255))
            if rng.random() < 0.5:
                cv2.circle(out, (x, y), int(rng.integers(20, max(h // 4, 21))), value, -1)
            else:
                size = (int(rng.integers(20, max(w // 4, 21))), int(rng.integers(20, max(h // 4, 21))))
                cv2.rectangle(out, (x, y), (x + size[0], y + size[1]), value, -1)
        return out
    if kind == "text page":
        out = np.full((h, w), 245, np.uint8)
        for k in range(max(h // 40, 1)):
            cv2.putText(
                out,
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2,
                (20, 30 + 40 * k),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.9,
                20,
                2,
            )
        return out
    if kind == "blank":
        return np.full((h, w), 200, np.uint8)
    if kind == "black":
        return np.zeros((h, w), np.uint8)
    raise ValueError(f"unknown kind {kind!r}, one of {KINDS}")


def random_images(
    seed: int, n: int, aspect: tuple[float, float] = (1.0, 3.0), width: int = 2000
) -> list[tuple[str, np.ndarray]]:
    """`n` images of the VARIED kinds in turn, each of a random size (width within 0.6-1.4 of
    `width`, width / height within `aspect`), blurred or mixed with 1/f noise half of the time, so
    that a kind is not one point. (kind, image) pairs."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = VARIED[k % len(VARIED)]
        w = int(width * rng.uniform(0.6, 1.4))
        h = max(int(w / rng.uniform(*aspect)), 16)
        sub = int(rng.integers(1 << 30))
        img = image(kind, w, h, sub).astype(np.float32)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 8)))
        if rng.random() < 0.5:
            a = float(rng.uniform(0.1, 0.6))
            img = (1 - a) * img + a * image("pink noise", w, h, sub + 1)
        out.append((kind, np.clip(img, 0, 255).astype(np.uint8)))
    return out


def photo_files() -> list[Path]:
    """Photographs shipped with Gradio (animals, a tower, a figure), or none without it."""
    try:
        import gradio
    except ImportError:
        return []
    root = Path(gradio.__file__).parent
    files = sorted((root / "media_assets" / "images").glob("*.jp*g")) + sorted(
        (root / "test_data").glob("cheetah2.jpg")
    )
    return [p for p in files if p.stat().st_size > 10_000]


def photos(
    crops: int = 5, aspect: tuple[float, float] = (1.2, 2.5), seed: int = 5
) -> list[tuple[str, np.ndarray]]:
    """Each photograph of `photo_files` as it is and `crops` random crops with a width / height in
    `aspect`, gray. (name, image) pairs."""
    rng = np.random.default_rng(seed)
    out = []
    for path in photo_files():
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            continue
        out.append((path.name, gray))
        h, w = gray.shape
        for k in range(crops):
            cw = int(w * rng.uniform(0.5, 1.0))
            ch = min(h, int(cw / rng.uniform(*aspect)))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            out.append((f"{path.name} crop {k + 1}", gray[y : y + ch, x : x + cw]))
    return out
