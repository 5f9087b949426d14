"""Convert an fp32 ONNX model to fp16 weights and compute, keeping fp32 inputs and outputs.

TensorRT 11 builds only strongly typed networks (trtexec has no --fp16), and TensorRT 10.12
deprecates weak typing, so fp16 must be in the graph itself. Keeping the I/O in fp32 means the
manifest, the pipelines and the TensorRTEngine's buffers stay the same whatever precision the plan
runs in.

Uses NVIDIA ModelOpt AutoCast when installed (TensorRT's documented path), else
onnxconverter-common's float16 converter (in the gpu extra). Prints which one it used.

`keep_io_types=True` is not enough on its own: onnxconverter-common keeps ops of its block list
(Resize among them) in fp32 and casts their result back to fp16, and when such an op is the last
node that cast becomes the graph output, so pano-teeth and pano-periapical came out with a float16
`logits`. `convert` therefore puts back every graph input and output type the converter changed,
then compares the I/O types with the source and raises (failing the plan build) if any differ.

  python -m engines.convert_fp16 model.onnx model_fp16.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def convert(source: Path, target: Path) -> str:
    """Write the fp16 model to `target`; return the name of the converter used. Raises ValueError
    when the converted graph's input or output types differ from the source's."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except ImportError:
        convert_to_mixed_precision = None
    original = onnx.load(str(source))
    if convert_to_mixed_precision is not None:
        model = convert_to_mixed_precision(
            onnx_path=str(source), low_precision_type="fp16", keep_io_types=True
        )
        tool = "modelopt.onnx.autocast"
    else:
        from onnxconverter_common import float16

        # keep_io_types: Cast nodes at the edges, fp16 inside (but see the module docstring).
        model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        tool = "onnxconverter_common.float16"
    restore_io_types(original, model)
    problems = io_type_differences(original, model)
    if problems:
        raise ValueError(f"{source}: fp16 conversion ({tool}) changed the graph's I/O types: "
                         + "; ".join(problems))
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return tool


def io_types(model: Any) -> dict[str, tuple[str, int]]:
    """{tensor name: ("input" | "output", ONNX elem type)} of the graph's inputs and outputs."""
    initializers = {i.name for i in model.graph.initializer}
    types = {v.name: ("input", v.type.tensor_type.elem_type)
             for v in model.graph.input if v.name not in initializers}
    types.update({v.name: ("output", v.type.tensor_type.elem_type) for v in model.graph.output})
    return types


def io_type_differences(source: Any, converted: Any) -> list[str]:
    """'<kind> <name>: <source type> -> <converted type>' for each I/O tensor that changed."""
    from onnx import TensorProto

    want, got = io_types(source), io_types(converted)
    problems = []
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            kind = (want.get(name) or got[name])[0]
            pair = (want.get(name), got.get(name))
            types = [TensorProto.DataType.Name(t[1]) if t else "missing" for t in pair]
            problems.append(f"{kind} {name!r}: {types[0]} -> {types[1]}")
    return problems


def restore_io_types(source: Any, model: Any) -> list[str]:
    """Give every graph input and output of `model` its type in `source` again, with a Cast where
    needed (or by retargeting the converter's own Cast that produces an output). Returns the names
    it changed."""
    from onnx import helper

    want = {name: elem for name, (_kind, elem) in io_types(source).items()}
    graph = model.graph
    changed = []
    for value in graph.output:
        elem = want.get(value.name)
        got = value.type.tensor_type.elem_type
        if elem is None or got == elem:
            continue
        producer = next((n for n in graph.node if value.name in n.output), None)
        if producer is not None and producer.op_type == "Cast":
            # The converter's fp32 -> fp16 cast after a blocked op: cast to the source type instead.
            for attr in producer.attribute:
                if attr.name == "to":
                    attr.i = elem
        else:
            inner = _unique_name(model, f"{value.name}_fp16_inner")
            for node in graph.node:
                node.output[:] = [inner if o == value.name else o for o in node.output]
                node.input[:] = [inner if i == value.name else i for i in node.input]
            graph.node.append(helper.make_node("Cast", [inner], [value.name], to=elem,
                                               name=f"{value.name}_restore_io_type"))
        value.type.tensor_type.elem_type = elem
        changed.append(value.name)
    for value in graph.input:
        elem = want.get(value.name)
        got = value.type.tensor_type.elem_type
        if elem is None or got == elem:
            continue
        inner = _unique_name(model, f"{value.name}_fp16_inner")
        for node in graph.node:
            node.input[:] = [inner if i == value.name else i for i in node.input]
        graph.node.insert(0, helper.make_node("Cast", [value.name], [inner], to=got,
                                              name=f"{value.name}_restore_io_type"))
        value.type.tensor_type.elem_type = elem
        changed.append(value.name)
    # Stale value_info for a renamed or retyped I/O tensor would contradict the graph.
    names = set(changed)
    kept = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return changed


def _unique_name(model: Any, base: str) -> str:
    used = {t for n in model.graph.node for t in (*n.input, *n.output)}
    name, index = base, 0
    while name in used:
        index += 1
        name = f"{base}_{index}"
    return name


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
