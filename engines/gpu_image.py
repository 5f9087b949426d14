"""Checks of the GPU image itself: one TensorRT, and an onnxruntime-gpu for the image's CUDA.

Run by Dockerfile.gpu at build time (no GPU needed) and first by engines/check_gpu.sh:

- the Python `tensorrt` is the same TensorRT as trtexec (plans are filed under the Python package's
  version and built by trtexec; a tensorrt wheel from PyPI beside the image's trtexec would build
  plans with one TensorRT and file them under another);
- when onnxruntime-gpu is installed, it was built for the image's CUDA major (a wheel for another
  major cannot load its CUDA provider, and ONNX Runtime then runs on the CPU without an error).

  python -m engines.gpu_image        exit 1 with the reasons when a check fails
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from engines.plans import trtexec_disagreement

TRTEXEC_DIRS = ("/opt/tensorrt/bin", "/usr/src/tensorrt/bin")  # as engines/build_engines.sh


def find_trtexec() -> str | None:
    """TRTEXEC, else PATH, else the NGC image's /opt/tensorrt/bin and /usr/src/tensorrt/bin."""
    if os.environ.get("TRTEXEC"):
        return os.environ["TRTEXEC"]
    found = shutil.which("trtexec")
    if found:
        return found
    for directory in TRTEXEC_DIRS:
        if os.access(Path(directory) / "trtexec", os.X_OK):
            return str(Path(directory) / "trtexec")
    return None


def trtexec_banner(trtexec: str) -> str:
    done = subprocess.run([trtexec, "--help"], capture_output=True, text=True, timeout=60)
    return "\n".join((done.stdout + done.stderr).splitlines()[:3])


def image_cuda_version(cuda_root: str = "/usr/local/cuda") -> str | None:
    """The CUDA toolkit of the image: version.json (CUDA 11.1+), else the CUDA_VERSION variable
    NVIDIA's images set."""
    try:
        return str(json.loads((Path(cuda_root) / "version.json").read_text())["cuda"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return os.environ.get("CUDA_VERSION") or None


def ort_gpu_cuda_version() -> tuple[str | None, str | None]:
    """(onnxruntime-gpu's version, the CUDA version it was built with), (None, None) without it."""
    try:
        version = importlib.metadata.version("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return None, None
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        return version, None
    return version, getattr(info, "cuda_version", None) or None


def cuda_major_problem(ort_version: str | None, ort_cuda: str | None, image_cuda: str | None) -> str | None:
    if ort_version is None:
        return None  # CPU onnxruntime: nothing to match
    if not ort_cuda or not image_cuda:
        return (f"cannot tell whether onnxruntime-gpu {ort_version} (CUDA {ort_cuda or '?'}) matches the "
                f"image's CUDA {image_cuda or '?'}")
    if ort_cuda.split(".")[0] != image_cuda.split(".")[0]:
        return (f"onnxruntime-gpu {ort_version} is built for CUDA {ort_cuda} but the image has CUDA "
                f"{image_cuda}: its CUDA provider would not load and ONNX Runtime would run on the CPU; "
                f"pin an onnxruntime-gpu for CUDA {image_cuda.split('.')[0]} "
                f"(Dockerfile.gpu ORT_GPU_VERSION)")
    return None


def problems() -> tuple[list[str], list[str]]:
    """(failures, notes)."""
    failures, notes = [], []
    try:
        import tensorrt
    except ImportError as exc:
        failures.append(f"the image's tensorrt Python package is not importable: {exc}")
        tensorrt = None
    trtexec = find_trtexec()
    if trtexec is None:
        failures.append(f"trtexec not found (TRTEXEC=, PATH, {' '.join(TRTEXEC_DIRS)})")
    elif tensorrt is not None:
        problem = trtexec_disagreement(trtexec_banner(trtexec), tensorrt.__version__)
        if problem:
            failures.append(f"{problem} (python: {tensorrt.__file__}, trtexec: {trtexec})")
        else:
            notes.append(f"TensorRT {tensorrt.__version__}: Python {tensorrt.__file__}, trtexec {trtexec}")
    ort_version, ort_cuda = ort_gpu_cuda_version()
    image_cuda = image_cuda_version()
    problem = cuda_major_problem(ort_version, ort_cuda, image_cuda)
    if problem and ort_cuda and image_cuda:
        failures.append(problem)
    elif problem:
        notes.append(f"WARNING: {problem}; engines/check_gpu.py fails if its CUDA provider does not load")
    elif ort_version:
        notes.append(f"onnxruntime-gpu {ort_version} for CUDA {ort_cuda}, image CUDA {image_cuda}")
    return failures, notes


def main() -> int:
    failures, notes = problems()
    for note in notes:
        print(note)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
