"""Check a model directory before committing it: manifest readable, sha256 right (and the int8
copy's, made from this fp32 file), ONNX graph I/O equal to the manifest, model card present, and a
zero batch at batch min and max runs on ONNX Runtime, from each file, with outputs of the declared
shapes.

  python -m engines.check_model models/<name> [--write-sha256]

--write-sha256 first stores the ONNX file's sha256 in manifest.json (after a re-export).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from engines.base import EngineError
from engines.manifest import ModelManifest
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.validation import example_inputs


def write_sha256(model_dir: Path) -> str:
    path = model_dir / "manifest.json"
    raw = json.loads(path.read_text())
    raw["sha256"] = hashlib.sha256((model_dir / raw["onnx"]).read_bytes()).hexdigest()
    path.write_text(json.dumps(raw, indent=2) + "\n")
    return raw["sha256"]


def check(model_dir: Path) -> list[str]:
    """Problems found, empty when the model is fit to ship."""
    try:
        manifest = ModelManifest.load(model_dir)
        manifest.verify_checksum()
    except (OSError, ValueError) as exc:
        return [str(exc)]
    problems = []
    if manifest.name != model_dir.name:
        problems.append(f"manifest name {manifest.name!r} differs from directory {model_dir.name!r}")
    if not (model_dir / "MODEL_CARD.md").is_file():
        problems.append("MODEL_CARD.md missing")
    if not 1 <= manifest.batch_min <= manifest.batch_opt <= manifest.batch_max:
        problems.append(f"batch must satisfy 1 <= min <= opt <= max, got {manifest.raw.get('batch')}")
        return problems
    for precision in ("fp32", "int8") if manifest.int8 else ("fp32",):
        try:
            engine = OnnxRuntimeEngine(manifest, intra_threads=1, providers=["CPUExecutionProvider"],
                                       precision=precision)
            problems += [f"{precision} {p}" for p in _shape_problems(engine, manifest)]
            engine.close()
        except EngineError as exc:
            problems.append(str(exc))
    return problems


def _shape_problems(engine: OnnxRuntimeEngine, manifest: ModelManifest) -> list[str]:
    problems = []
    for batch in sorted({manifest.batch_min, manifest.batch_max}):
        outputs = engine.infer(example_inputs(manifest, batch=batch))
        for spec in manifest.outputs:
            got = outputs[spec.name].shape
            fixed_ok = all(isinstance(d, str) or d == g for d, g in zip(spec.shape, got, strict=False))
            if len(got) != len(spec.shape) or not fixed_ok:
                problems.append(f"output {spec.name!r} at batch {batch}: shape {list(got)}, "
                                f"manifest {list(spec.shape)}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.check_model", description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--write-sha256", action="store_true")
    args = parser.parse_args(argv)
    if args.write_sha256:
        print(f"sha256 {write_sha256(args.model_dir)} written to {args.model_dir / 'manifest.json'}")
    problems = check(args.model_dir)
    for problem in problems:
        print(f"FAIL {args.model_dir}: {problem}")
    if not problems:
        print(f"ok {args.model_dir}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
