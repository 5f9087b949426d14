"""Combine exported findings models into one ONNX file whose logits are the mean of its members'
logits, each also read on the horizontally mirrored crop (mirrored back) when `--flip` is given.

    .venv/bin/python -m training.pano_findings.ensemble --flip --version 3.0.0 \
        --members runs/a/export runs/b/export --out models/pano-periapical

Each member is a directory written by `training.pano_findings.export --out DIR` (model.onnx and
manifest.json). The result is one graph with the members' input and output names, so the pipeline,
the engines and `eval_findings` read it like any single model; its manifest is the first member's
with the new file's checksum, the version and an `ensemble` block naming what it was built from.
Why: on 118 lesion films a short fine-tuning run varies much with its seed, and a panoramic is
close to mirror-symmetric, so averaging runs and mirror views steadies the probability map.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper

from training.onnx_export import sha256

ROOT = Path(__file__).resolve().parents[2]
# Width is the last axis of the [batch, 1, height, width] input and output.
WIDTH_AXIS = 3


def _mirror(name: str, out: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """A Slice reversing tensor `name` along the width into `out`, and its constant inputs."""
    consts = [
        helper.make_tensor(f"{out}_starts", TensorProto.INT64, [1], [-1]),
        helper.make_tensor(f"{out}_ends", TensorProto.INT64, [1], [np.iinfo(np.int64).min]),
        helper.make_tensor(f"{out}_axes", TensorProto.INT64, [1], [WIDTH_AXIS]),
        helper.make_tensor(f"{out}_steps", TensorProto.INT64, [1], [-1]),
    ]
    return helper.make_node("Slice", [name, *(c.name for c in consts)], [out], name=out), consts


def combine(members: list[onnx.ModelProto], flip: bool) -> onnx.ModelProto:
    """One graph: the mean over members (and the mirror view) of their logits, same input and output.

    The mirror view travels as a second batch item (members have a dynamic batch axis), so each
    member appears once in the graph; the halves are split apart and the mirrored one turned back.
    """
    first = members[0].graph
    inp, out = first.input[0].name, first.output[0].name
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    views = inp
    if flip:
        node, consts = _mirror(inp, "input_mirrored")
        nodes += [node, helper.make_node("Concat", [inp, "input_mirrored"], ["views"], axis=0, name="views")]
        inits += consts
        views = "views"
    outputs = []
    for k, member in enumerate(members):
        if (member.graph.input[0].name, member.graph.output[0].name) != (inp, out):
            raise ValueError(f"member {k}: input/output names differ from the first member's")
        g = compose.add_prefix(member, f"m{k}_").graph
        nodes.append(helper.make_node("Identity", [views], [g.input[0].name], name=f"m{k}_in"))
        nodes += list(g.node)
        inits += list(g.initializer)
        outputs.append(g.output[0].name)
    total = len(outputs) * (2 if flip else 1)
    nodes.append(helper.make_node("Sum", outputs, ["logit_sum"], name="logit_sum"))
    if flip:
        node, consts = _mirror("sum_mirrored", "sum_unmirrored")
        nodes += [
            helper.make_node("Split", ["logit_sum"], ["sum_plain", "sum_mirrored"], axis=0, name="split"),
            node,
            helper.make_node("Add", ["sum_plain", "sum_unmirrored"], ["logit_sum_views"], name="views_sum"),
        ]
        inits += consts
    inits.append(helper.make_tensor("ensemble_scale", TensorProto.FLOAT, [], [1.0 / total]))
    summed = "logit_sum_views" if flip else "logit_sum"
    nodes.append(helper.make_node("Mul", [summed, "ensemble_scale"], [out], name="ensemble_mean"))
    graph = helper.make_graph(nodes, "findings_ensemble", [first.input[0]], [first.output[0]], inits)
    model = helper.make_model(graph, opset_imports=list(members[0].opset_import))
    model.ir_version = members[0].ir_version
    onnx.checker.check_model(model)
    return model


def reference(members: list[Path], flip: bool, x: np.ndarray) -> np.ndarray:
    """What `combine` must compute, from the member files run one by one."""
    outs = []
    for path in members:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs.append(sess.run(None, {name: x})[0])
        if flip:
            outs.append(sess.run(None, {name: np.ascontiguousarray(x[..., ::-1])})[0][..., ::-1])
    return np.mean(outs, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=Path, nargs="+", required=True,
                        help="directories written by training.pano_findings.export --out")
    parser.add_argument("--flip", action="store_true", help="also read each crop mirrored")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    files = [m / "model.onnx" for m in args.members]
    model = combine([onnx.load(str(f)) for f in files], args.flip)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    onnx.save(model, str(onnx_path))
    # Proved like every export: the file against its members, at a size other than a training one.
    x = np.random.default_rng(0).standard_normal((1, 1, 200, 376)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {model.graph.input[0].name: x})[0]
    err = float(np.abs(got - reference(files, args.flip, x)).max())
    assert err < 1e-3, f"ensemble differs from its members by {err}"
    manifest = json.loads((args.members[0] / "manifest.json").read_text())
    manifest["version"] = args.version
    manifest["sha256"] = sha256(onnx_path)
    manifest.pop("int8", None)
    manifest["ensemble"] = {
        "members": [
            {"checkpoint": json.loads((m / "manifest.json").read_text())["torch_reference"]["checkpoint"],
             "sha256": sha256(f)}
            for m, f in zip(args.members, files, strict=True)
        ],
        "mirror": args.flip,
        "combine": "mean of the members' logits" + (" over the crop and its mirror" if args.flip else ""),
        "command": "python -m training.pano_findings.ensemble " + ("--flip " if args.flip else "")
        + "--members " + " ".join(str(m) for m in args.members),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB), max |ensemble - members| {err:.2e}")


if __name__ == "__main__":
    main()
