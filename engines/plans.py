"""Where TensorRT plans live and how each was built.

A plan is only valid for the TensorRT version and GPU compute capability that built it, so plans
sit at `models/<name>/plans/<trt-version>/sm<major><minor>/model.plan` (git-ignored) with a sidecar
`build.json` beside it. Pure Python: no TensorRT import, so it runs and is tested everywhere.

Also a small CLI used by engines/build_engines.sh:
  python -m engines.plans shapes <model_dir>       trtexec --minShapes/--optShapes/--maxShapes
  python -m engines.plans plan-dir <model_dir> <trt-version> <cc>
  python -m engines.plans is-current <model_dir> <trt-version> <cc> [--precision P]   exit 0 when up to date
  python -m engines.plans write-sidecar <model_dir> <trt-version> <cc> <precision> <typing> <cmd>
  python -m engines.plans trt-onnx <model_dir>     the ONNX file to build from (refuses unsigned Q/DQ)
  python -m engines.plans plan-job <model_dir> <trt-version> <cc> <precision> [--force]
      all of the above for one model in one process: lines `dir <plan dir>`, `current 0|1 <why>`,
      and, when it must be built, `onnx <path>` and `shapes <trtexec shape flags>`
  python -m engines.plans check-trtexec <banner> <trt-version>   exit 1 when trtexec is another TensorRT
"""

from __future__ import annotations

import argparse
import json
import re
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
# How build_engines.sh makes a plan from the same ONNX file, TensorRT and GPU. Bump it when that
# changes the plan (flags, fp16 conversion) so that current-looking plans are rebuilt:
# 2: engines/convert_fp16.py restores fp32 I/O types; --stronglyTyped from TensorRT 10.12.
RECIPE = "2"


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
    recipe: str = ""  # RECIPE when it was built; "" for plans from before the field existed

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
    manifest: ModelManifest,
    plan_path: Path,
    trt_version: str,
    compute_capability: tuple[int, int] | str,
    precision: str | None = None,
    recipe: str | None = None,
) -> PlanBuild:
    """Refuse a plan built for another GPU, another TensorRT, or another ONNX file, saying how to
    rebuild; TensorRT's own error for the first two is an opaque deserialization failure. With
    `precision` or `recipe` (the build script's question "is this plan current?"), also refuse one
    built in another precision or by another build recipe."""
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
    if precision is not None and build.precision != precision:
        raise EngineError(
            f"model {manifest.name!r}: plan {plan_path} was built in "
            f"{build.precision or 'an unrecorded precision'}, {precision} is asked for; {REBUILD_HINT}"
        )
    if recipe is not None and build.recipe != recipe:
        raise EngineError(
            f"model {manifest.name!r}: plan {plan_path} was built by recipe {build.recipe or '1'}, "
            f"this build_engines.sh uses recipe {recipe}; {REBUILD_HINT}"
        )
    return build


_BANNER = re.compile(r"\[TensorRT v(\d+)\](?:\s*\[b(\d+)\])?")


def trtexec_version(banner: str) -> tuple[int, int, int, int | None] | None:
    """(major, minor, patch, build) from trtexec's first line, `&&&& RUNNING TensorRT.trtexec
    [TensorRT v100800] [b43] # ...` (v = major*10000 + minor*100 + patch); None when absent."""
    found = _BANNER.search(banner)
    if found is None:
        return None
    number = int(found.group(1))
    build = int(found.group(2)) if found.group(2) else None
    return number // 10000, number // 100 % 100, number % 100, build


def trtexec_disagreement(banner: str, trt_version: str) -> str | None:
    """Why trtexec (its banner) is not the TensorRT of the Python package `trt_version`, or None.
    Plans are filed under the Python package's version, so the two must be one TensorRT."""
    found = trtexec_version(banner)
    if found is None:
        return f"cannot read trtexec's TensorRT version from its output {banner.strip()[:120]!r}"
    parts = [int(p) for p in re.findall(r"\d+", trt_version)[:4]]
    if len(parts) < 3:
        return f"cannot read the Python tensorrt version {trt_version!r}"
    if tuple(parts[:3]) != found[:3] or (len(parts) > 3 and found[3] is not None and parts[3] != found[3]):
        shown = ".".join(str(p) for p in found[:3]) + (f" build {found[3]}" if found[3] is not None else "")
        return (f"trtexec is TensorRT {shown} but the Python tensorrt package is {trt_version}: plans would "
                f"be built by one TensorRT and filed under the other's version; install one TensorRT "
                f"(in the image: the image's own tensorrt package, never one from PyPI)")
    return None


def unsigned_qdq(onnx_path: Path) -> list[str]:
    """Q/DQ nodes with unsigned (uint8) quantized values. TensorRT quantizes symmetrically to signed
    INT8 with zero point 0, so such a graph (the int8 copies from training/quantize.py: uint8
    activations) is not a valid TensorRT source as it is. Needs `onnx` (imported here)."""
    data = Path(onnx_path).read_bytes()
    if b"QuantizeLinear" not in data:  # op types are stored as plain strings: no Q/DQ node at all
        return []
    import onnx
    from onnx import TensorProto

    model = onnx.load_from_string(data)
    elem = {i.name: i.data_type for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    elem[node.output[0]] = attr.t.data_type
    found = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero_point = node.input[2] if len(node.input) > 2 and node.input[2] else None
        quantized = node.input[0] if node.op_type == "DequantizeLinear" else None
        if zero_point is None and node.op_type == "QuantizeLinear":
            unsigned = not any(a.name == "output_dtype" and a.i != TensorProto.UINT8 for a in node.attribute)
        else:
            unsigned = TensorProto.UINT8 in (elem.get(zero_point or ""), elem.get(quantized or ""))
        if unsigned:
            found.append(node.name or f"{node.op_type}({node.input[0]})")
    return found


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


def _shape_flags(manifest: ModelManifest) -> str:
    """trtexec's --minShapes/--optShapes/--maxShapes, or "" for a model without dynamic axes
    (trtexec rejects shape flags for one)."""
    if not any(isinstance(d, str) for spec in manifest.inputs for d in spec.shape):
        return ""
    shapes = trtexec_shapes(manifest)
    return f"--minShapes={shapes['min']} --optShapes={shapes['opt']} --maxShapes={shapes['max']}"


def _unsigned_message(manifest: ModelManifest, unsigned: list[str]) -> str:
    return (f"{manifest.onnx_path}: {len(unsigned)} Q/DQ node(s) with unsigned (uint8) values, e.g. "
            f"{unsigned[0]}; TensorRT takes only signed symmetric INT8 Q/DQ: build from the fp32 model")


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.plans")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("shapes").add_argument("model_dir", type=Path)
    for name in ("plan-dir", "is-current"):
        p = sub.add_parser(name)
        p.add_argument("model_dir", type=Path)
        p.add_argument("trt_version")
        p.add_argument("cc")
        if name == "is-current":
            p.add_argument("--precision", default=None)
    sub.add_parser("trt-onnx").add_argument("model_dir", type=Path)
    j = sub.add_parser("plan-job")
    for arg in ("model_dir", "trt_version", "cc", "precision"):
        j.add_argument(arg)
    j.add_argument("--force", action="store_true")
    v = sub.add_parser("check-trtexec")
    v.add_argument("banner")
    v.add_argument("trt_version")
    w = sub.add_parser("write-sidecar")
    for arg in ("model_dir", "trt_version", "cc", "precision", "typing", "command"):
        w.add_argument(arg)
    w.add_argument("--gpu-name", default="")
    args = parser.parse_args(argv)

    if args.cmd == "check-trtexec":
        problem = trtexec_disagreement(args.banner, args.trt_version)
        if problem:
            print(problem, file=sys.stderr)
        return 1 if problem else 0
    manifest = ModelManifest.load(args.model_dir)
    if args.cmd == "shapes":
        print(_shape_flags(manifest))
    elif args.cmd == "plan-job":
        directory = plan_dir(args.model_dir, args.trt_version, args.cc)
        print(f"dir {directory}")
        try:
            check_plan(manifest, directory / PLAN_FILE, args.trt_version, args.cc,
                       precision=args.precision, recipe=RECIPE)
            current = "0 FORCE=1" if args.force else "1 current"
        except EngineError as exc:
            current = f"0 {exc}"
        print(f"current {current}")
        if current.startswith("0"):
            unsigned = unsigned_qdq(manifest.onnx_path)
            if unsigned:
                print(_unsigned_message(manifest, unsigned), file=sys.stderr)
                return 1
            print(f"onnx {manifest.onnx_path}")
            print(f"shapes {_shape_flags(manifest)}")
    elif args.cmd == "plan-dir":
        print(plan_dir(args.model_dir, args.trt_version, args.cc))
    elif args.cmd == "is-current":
        try:
            check_plan(manifest, plan_dir(args.model_dir, args.trt_version, args.cc) / PLAN_FILE,
                       args.trt_version, args.cc, precision=args.precision, recipe=RECIPE)
        except EngineError as exc:
            print(exc, file=sys.stderr)
            return 1
    elif args.cmd == "trt-onnx":
        # Always the fp32 file the manifest names (never the int8 copy), and never unsigned Q/DQ.
        unsigned = unsigned_qdq(manifest.onnx_path)
        if unsigned:
            print(_unsigned_message(manifest, unsigned), file=sys.stderr)
            return 1
        print(manifest.onnx_path)
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
            recipe=RECIPE,
        ).write(plan_dir(Path(args.model_dir), args.trt_version, args.cc) / SIDECAR_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
