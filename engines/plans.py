"""Where TensorRT plans live and how each was built.

A plan is only valid for the TensorRT version and GPU compute capability that built it, so plans
sit at `models/<name>/plans/<trt-version>/sm<major><minor>/model.plan` (git-ignored) with a sidecar
`build.json` beside it. Pure Python: no TensorRT import, so it runs and is tested everywhere.

Also a small CLI used by engines/build_engines.sh:
  python -m engines.plans shapes <model_dir>       trtexec --minShapes/--optShapes/--maxShapes
  python -m engines.plans plan-dir <model_dir> <trt-version> <cc>
  python -m engines.plans is-current <model_dir> <trt-version> <cc>   exit 0 when up to date
  python -m engines.plans write-sidecar <model_dir> <trt-version> <cc> <precision> <typing> <cmd>
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from engines.base import EngineError
from engines.manifest import ModelManifest
from engines.validation import dim_range

PLAN_FILE = "model.plan"
SIDECAR_FILE = "build.json"
REBUILD_HINT = "rebuild plans on this machine with `engines/build_engines.sh models` (plans are GPU-specific)"


def sm_tag(compute_capability: tuple[int, int] | str) -> str:
    """(8, 6) or "8.6" or "86" -> "sm86"."""
    if isinstance(compute_capability, tuple):
        return f"sm{compute_capability[0]}{compute_capability[1]}"
    return "sm" + compute_capability.replace(".", "").removeprefix("sm")


def plan_dir(model_dir: Path, trt_version: str, compute_capability: tuple[int, int] | str) -> Path:
    return Path(model_dir) / "plans" / trt_version / sm_tag(compute_capability)


@dataclass(frozen=True)
class PlanBuild:
    """The sidecar: what a plan was built from, for which GPU and TensorRT, and how."""

    model: str
    model_version: str
    onnx_sha256: str
    tensorrt_version: str
    compute_capability: str  # "sm86"
    precision: str  # "fp16" or "fp32"
    typing: str  # "weak (--fp16)" on TensorRT 10, "strong (converted ONNX)" on 11
    shapes: dict[str, str]
    command: str
    gpu_name: str = ""
    built_at: str = ""

    @classmethod
    def read(cls, path: Path) -> PlanBuild:
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (OSError, ValueError, TypeError) as exc:
            raise EngineError(f"{path}: unreadable plan sidecar ({exc}); {REBUILD_HINT}") from exc

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def check_plan(
    manifest: ModelManifest, plan_path: Path, trt_version: str, compute_capability: tuple[int, int] | str
) -> PlanBuild:
    """Refuse a plan built for another GPU, another TensorRT, or another ONNX file, saying how to
    rebuild; TensorRT's own error for the first two is an opaque deserialization failure."""
    sidecar = plan_path.parent / SIDECAR_FILE
    if not plan_path.is_file():
        raise EngineError(f"model {manifest.name!r}: no TensorRT plan at {plan_path}; {REBUILD_HINT}")
    if not sidecar.is_file():
        raise EngineError(f"model {manifest.name!r}: plan {plan_path} has no {SIDECAR_FILE}; {REBUILD_HINT}")
    build = PlanBuild.read(sidecar)
    here = (trt_version, sm_tag(compute_capability))
    built = (build.tensorrt_version, sm_tag(build.compute_capability))
    if built != here:
        raise EngineError(
            f"model {manifest.name!r}: plan {plan_path} was built for TensorRT {built[0]} on {built[1]}, "
            f"this machine has TensorRT {here[0]} on {here[1]}; {REBUILD_HINT}"
        )
    if build.onnx_sha256 != manifest.sha256:
        raise EngineError(
            f"model {manifest.name!r}: plan {plan_path} was built from ONNX sha256 {build.onnx_sha256[:12]}, "
            f"the manifest says {manifest.sha256[:12]}; {REBUILD_HINT}"
        )
    return build


def trtexec_shapes(manifest: ModelManifest) -> dict[str, str]:
    """{"min": "image:1x1x32x32", "opt": ..., "max": ...} from the manifest's batch and dim_ranges."""
    result = {}
    for index, level in enumerate(("min", "opt", "max")):
        parts = []
        for spec in manifest.inputs:
            dims = [str(d) if isinstance(d, int) else str(dim_range(manifest, d)[index]) for d in spec.shape]
            parts.append(f"{spec.name}:{'x'.join(dims)}")
        result[level] = ",".join(parts)
    return result


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.plans")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("shapes").add_argument("model_dir", type=Path)
    for name in ("plan-dir", "is-current"):
        p = sub.add_parser(name)
        p.add_argument("model_dir", type=Path)
        p.add_argument("trt_version")
        p.add_argument("cc")
    w = sub.add_parser("write-sidecar")
    for arg in ("model_dir", "trt_version", "cc", "precision", "typing", "command"):
        w.add_argument(arg)
    w.add_argument("--gpu-name", default="")
    args = parser.parse_args(argv)

    manifest = ModelManifest.load(args.model_dir)
    if args.cmd == "shapes":
        # trtexec rejects shape flags for a model without dynamic axes: print nothing then.
        if any(isinstance(d, str) for spec in manifest.inputs for d in spec.shape):
            shapes = trtexec_shapes(manifest)
            print(f"--minShapes={shapes['min']} --optShapes={shapes['opt']} --maxShapes={shapes['max']}")
    elif args.cmd == "plan-dir":
        print(plan_dir(args.model_dir, args.trt_version, args.cc))
    elif args.cmd == "is-current":
        try:
            check_plan(manifest, plan_dir(args.model_dir, args.trt_version, args.cc) / PLAN_FILE,
                       args.trt_version, args.cc)
        except EngineError as exc:
            print(exc, file=sys.stderr)
            return 1
    else:
        PlanBuild(
            model=manifest.name,
            model_version=manifest.version,
            onnx_sha256=manifest.sha256,
            tensorrt_version=args.trt_version,
            compute_capability=sm_tag(args.cc),
            precision=args.precision,
            typing=args.typing,
            shapes=trtexec_shapes(manifest),
            command=args.command,
            gpu_name=args.gpu_name,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ).write(plan_dir(Path(args.model_dir), args.trt_version, args.cc) / SIDECAR_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
