"""Convert an fp32 ONNX model to fp16 weights and compute, keeping fp32 inputs and outputs.

TensorRT 11 builds only strongly typed networks (trtexec has no --fp16), so fp16 must be in the
graph itself. Keeping the I/O in fp32 means the manifest, the pipelines and the TensorRTEngine's
buffers stay the same whatever precision the plan runs in.

Uses NVIDIA ModelOpt AutoCast when installed (TensorRT's documented path), else
onnxconverter-common's float16 converter (on PyPI, in the gpu extra). Prints which one it used.

  python -m engines.convert_fp16 model.onnx model_fp16.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(source: Path, target: Path) -> str:
    """Write the fp16 model to `target`; return the name of the converter used."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except ImportError:
        convert_to_mixed_precision = None
    if convert_to_mixed_precision is not None:
        model = convert_to_mixed_precision(
            onnx_path=str(source), low_precision_type="fp16", keep_io_types=True
        )
        tool = "modelopt.onnx.autocast"
    else:
        from onnxconverter_common import float16

        # keep_io_types: Cast nodes at the edges, fp16 inside.
        model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        tool = "onnxconverter_common.float16"
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return tool


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.convert_fp16", description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    tool = convert(args.source, args.target)
    print(f"converted {args.source} -> {args.target} (fp16 inside, fp32 I/O) with {tool}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
