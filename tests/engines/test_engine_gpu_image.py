"""Dockerfile.gpu and deploy/k8s/worker-gpu.yaml read as the pod runs them (no Docker, no cluster
here): the image and the pod are one non-root uid, every path the GPU pod writes (the entrypoint's
plan build: `engines/build_engines.sh --print-paths`, and the init container's copy) is writable by
that uid, and the GPU stack is pinned: no tensorrt from PyPI, onnxruntime-gpu of a fixed version
checked against the image's CUDA by engines/gpu_image.py at build time."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from pathlib import Path, PurePosixPath

import pytest
import yaml

from engines import gpu_image

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.gpu"
MANIFEST = ROOT / "deploy" / "k8s" / "worker-gpu.yaml"


def gpu_stage() -> list[str]:
    """The gpu target's instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    start = next(i for i, line in enumerate(lines) if re.match(r"FROM \S+ AS gpu$", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("FROM ")), len(lines))
    return lines[start:end]


def pod_spec() -> dict:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]


def image_workdir() -> str:
    return [line.split()[1] for line in gpu_stage() if line.startswith("WORKDIR ")][-1]


def image_writable_dirs(uid: int) -> list[str]:
    """Directories of the image the uid owns: chown'd to it in the gpu stage, plus /tmp."""
    owned = ["/tmp"]
    for line in gpu_stage():
        for match in re.finditer(rf"chown (?:-R )?{uid}(?::\d+)? ((?:/\S+ ?)+)", line):
            owned += match.group(1).split()
        match = re.match(rf"COPY --chown={uid}\S* .* (/\S+)$", line)
        if match:
            owned.append(match.group(1))
    return owned


def writable_mounts(spec: dict, container: dict) -> list[str]:
    """Mount paths backed by a volume a pod can write (emptyDir, PVC), not mounted read-only."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return [m["mountPath"] for m in container.get("volumeMounts", [])
            if not m.get("readOnly") and ({"emptyDir", "persistentVolumeClaim"} & set(volumes[m["name"]]))]


def under(path: str, roots: list[str]) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(r) or PurePosixPath(r) in p.parents for r in roots)


def test_the_gpu_pod_and_its_image_are_one_non_root_uid():
    security = pod_spec()["securityContext"]
    assert security["runAsNonRoot"] is True
    users = [line.split()[1] for line in gpu_stage() if line.startswith("USER ")]
    # Numeric, so that the kubelet can verify runAsNonRoot, and the pod's uid.
    assert users and users[-1] == str(security["runAsUser"]) == "10001"


def test_every_path_the_gpu_pod_writes_is_writable_as_its_user():
    spec = pod_spec()
    uid = spec["securityContext"]["runAsUser"]
    image_owned = image_writable_dirs(uid)
    workdir = image_workdir()
    assert "/app" == workdir and any(re.match(r"COPY \. /app$", line) for line in gpu_stage())

    for init in spec.get("initContainers", []):
        command = shlex.split(" ".join(init["command"][2:]))  # sh -c "<script>"
        assert command[0] == "cp" and "-a" not in command  # -a would keep root as the owner
        assert under(command[-1], writable_mounts(spec, init) + image_owned), init["name"]

    worker = next(c for c in spec["containers"] if c["name"] == "worker")
    env = {e["name"]: e["value"] for e in worker.get("env", []) if "value" in e}
    assert "DENTALAI_WORKER_MODELS_DIR" in (ROOT / "engines" / "docker_entrypoint.sh").read_text()
    models_dir = env.get("DENTALAI_WORKER_MODELS_DIR", f"{workdir}/models")
    clean = {k: v for k, v in os.environ.items() if k not in ("TRT_CACHE_DIR", "TIMING_CACHE")}
    done = subprocess.run(["bash", str(ROOT / "engines" / "build_engines.sh"), "--print-paths", models_dir],
                          env={**clean, **env}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    # In the image the script lives in /app/engines, so its repository root is /app.
    written = [line.split(" ", 1)[1].replace(str(ROOT), workdir) for line in done.stdout.splitlines()]
    assert written, "build_engines.sh --print-paths printed nothing"
    allowed = writable_mounts(spec, worker) + image_owned
    for path in written:
        assert under(path, allowed), f"the GPU pod (uid {uid}) cannot write {path}; writable: {allowed}"


def test_the_gpu_extra_is_pinned_and_brings_no_tensorrt():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    names = {re.split(r"[=<>!~\[; ]", requirement)[0].lower() for requirement in extra}
    assert not any(name.startswith("tensorrt") for name in names)  # the image's, never PyPI's
    for requirement in extra:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", requirement), requirement


def test_onnxruntime_gpu_is_pinned_and_checked_against_the_images_cuda():
    stage = gpu_stage()
    args = dict(line[4:].split("=", 1) for line in stage if line.startswith("ARG ") and "=" in line)
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["ORT_GPU_VERSION"])
    install = next(line for line in stage if "onnxruntime-gpu" in line and line.startswith("RUN "))
    assert '"onnxruntime-gpu==${ORT_GPU_VERSION}"' in install
    # The image check runs after the last install, in the same layer.
    assert install.rstrip().endswith("python -m engines.gpu_image")
    assert "PATH=" in next(line for line in stage if line.startswith("ENV ") and "PATH=" in line)
    assert "/opt/tensorrt/bin" in next(line for line in stage if "PATH=" in line)


@pytest.mark.parametrize(
    ("ort", "ort_cuda", "image", "ok"),
    [
        (None, None, "12.8.0", True),  # CPU onnxruntime
        ("1.26.0", "12.8", "12.8.0", True),
        ("1.26.0", "12.2", "12.8.0", True),  # minor versions are compatible
        ("1.31.1", "13.0", "12.8.0", False),
        ("1.26.0", None, "12.8.0", False),
    ],
)
def test_cuda_major_of_onnxruntime_gpu_and_the_image(ort, ort_cuda, image, ok):
    assert (gpu_image.cuda_major_problem(ort, ort_cuda, image) is None) == ok


def test_image_cuda_version_from_version_json(tmp_path, monkeypatch):
    (tmp_path / "version.json").write_text(json.dumps({"cuda": {"name": "CUDA SDK", "version": "12.8.0"}}))
    assert gpu_image.image_cuda_version(str(tmp_path)) == "12.8.0"
    monkeypatch.setenv("CUDA_VERSION", "12.8.0.038")
    assert gpu_image.image_cuda_version(str(tmp_path / "none")) == "12.8.0.038"


def test_image_check_fails_on_a_second_tensorrt(tmp_path, monkeypatch, capsys):
    trtexec = tmp_path / "trtexec"
    trtexec.write_text("#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v100800] [b43] # trtexec'\n")
    trtexec.chmod(0o755)
    monkeypatch.setenv("TRTEXEC", str(trtexec))
    pypi = types.ModuleType("tensorrt")
    pypi.__version__ = "11.4.0.106"
    pypi.__file__ = "/opt/venv/lib/python3.12/site-packages/tensorrt/__init__.py"
    monkeypatch.setitem(sys.modules, "tensorrt", pypi)
    assert gpu_image.main() == 1
    assert "trtexec is TensorRT 10.8.0 build 43 but the Python tensorrt package is 11.4.0.106" in (
        capsys.readouterr().err)
    pypi.__version__ = "10.8.0.43"
    failures, notes = gpu_image.problems()
    assert failures == [] and any(n.startswith("TensorRT 10.8.0.43") for n in notes)
