"""Pipeline latency: image bytes -> result message, split into decode, preprocess, inference and
postprocess, for the ceph and pano pipelines on ONNX Runtime (CPU), intra-op threads 1 and 2.

    .venv/bin/python bench/pipeline_latency.py                  # defaults: about 1 min on 2 cores
    .venv/bin/python bench/pipeline_latency.py --reps 50 --threads 1 2 --only pano --json out.json
    .venv/bin/python bench/pipeline_latency.py --only pano --threads 1 --precision int8 fp32

Inputs (real radiographs, encoded to PNG bytes in memory with Pillow's defaults):
- ceph: a full-resolution ISBI 2015 image, 1935 x 2400 (../shared/data/ceph/isbi2015_fullres);
  when that set is absent, an ISBI 640 x 800 validation image upscaled to 1935 x 2400 (said so);
- pano: a DC1000 panoramic at its original 2943 x 1435 (../shared/data/pano/dc1000_caries); when that
  set is absent, a UFBA-425 image (512 x 512, itself a stretched panoramic) resized to 2943 x 1435.

Each repetition runs what the worker runs: `grpc_server.decode.decode_image` on the bytes, then
`pipeline.run(image, AnalysisOptions())` of the pipeline that `pipelines.registry.load_pipelines`
builds (and warms up) from models/<name>/. The split needs no knowledge of the pipeline: each of
the pipeline's engines (a pipeline may run several models: ceph stage 2, pano findings) is wrapped
in a proxy that notes when `infer` is entered and left, so
- decode       = decode_image on the bytes;
- preprocess   = from `run` until the first engine call (input checks, gray, resize, normalise);
- inference    = inside every `engine.infer` call (stage 1 runs a batch of two: image and mirror);
- postprocess  = the rest until the result message (heatmap / mask decoding, patches cut between
                 two models' calls, measurements or outlines, the protobuf).
The pipeline's own StageTimer split is printed too (its stage names differ per pipeline: ceph
reports stage1 and stage2 with their own pre- and post-processing).

Baselines measured in the same run, interleaved with the repetitions (the machine is noisy):
- `ref`: a fixed single-threaded numpy workload (sorting 2**21 float32); `total / ref` compares
  runs on different days or machines better than milliseconds do;
- `bare`: the engine alone, batch 1 at the model's input size (random input), same thread count;
- with `--precision int8 fp32`: the same pipeline on the models' fp32 files (`worker.ort_precision`),
  and the ratio int8 / fp32 of decoded image to result, per thread count.
The targets (decoded image to result on one thread: ceph at most 150 ms, pano 600 ms with findings)
are fixed numbers, so `target` = (preprocess + inference + postprocess) / target ms depends on how
busy the machine is; read it together with `total / ref`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

from dentalai.config import load_config  # noqa: E402
from dentalai.v1 import task_pb2  # noqa: E402
from engines.base import Engine  # noqa: E402
from engines.manifest import ModelManifest  # noqa: E402
from engines.onnxruntime_engine import PRECISIONS  # noqa: E402
from engines.validation import example_inputs  # noqa: E402
from grpc_server.decode import decode_image  # noqa: E402
from pipelines import registry  # noqa: E402
from pipelines.base_pipeline import Pipeline, StageTimer  # noqa: E402
from pipelines.registry import PIPELINES  # noqa: E402

DATA_DIR = ROOT.parent / "shared" / "data"
STAGES = ("decode", "preprocess", "inference", "postprocess")
# Decoded image to result on one thread (issue 11: ceph, both stages; issue 14: pano with findings).
TARGET_MS = {"ceph": 150.0, "pano": 600.0}
CEPH_SIZE = (1935, 2400)  # width, height of an ISBI 2015 original
PANO_SIZE = (2943, 1435)  # a DC1000 original
REF_ELEMENTS = 1 << 21


@dataclass
class Input:
    task: str
    png: bytes
    width: int
    height: int
    source: str


@dataclass
class Row:
    task: str
    threads: int
    precision: str
    reps: int
    source: str
    width: int
    height: int
    png_bytes: int
    # stage -> list of ms per repetition; "to_result" = preprocess + inference + postprocess,
    # "total" = decode + to_result.
    samples_ms: dict[str, list[float]] = field(default_factory=dict)
    pipeline_stages_ms: dict[str, list[float]] = field(default_factory=dict)
    ref_ms: list[float] = field(default_factory=list)
    bare_ms: list[float] = field(default_factory=list)
    engine_calls: int = 0
    result_summary: str = ""


class TimedEngine:
    """A pipeline's engine with the time of every `infer` call noted (entered, left) in `calls`,
    which the engines of one pipeline share."""

    def __init__(self, engine: Engine, calls: list[tuple[float, float]]) -> None:
        self.inner = engine
        self.manifest = engine.manifest
        self.runtime = engine.runtime
        self.calls = calls

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        try:
            return self.inner.infer(inputs)
        finally:
            self.calls.append((start, time.perf_counter()))

    def warmup(self) -> None:
        self.inner.warmup()

    def close(self) -> None:
        self.inner.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return float(np.percentile(ordered, q)) if ordered else float("nan")


def png_of(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def ceph_input(data_dir: Path) -> Input | str:
    """A 1935 x 2400 cephalogram, or why there is none."""
    full = sorted((data_dir / "ceph" / "isbi2015_fullres" / "images").glob("*.png"))
    if full:
        gray = cv2.imread(str(full[0]), cv2.IMREAD_GRAYSCALE)
        source = f"ISBI 2015 {full[0].name}, original resolution"
        if (gray.shape[1], gray.shape[0]) != CEPH_SIZE:
            gray = cv2.resize(gray, CEPH_SIZE, interpolation=cv2.INTER_CUBIC)
            source += f" resized to {CEPH_SIZE[0]}x{CEPH_SIZE[1]}"
    else:
        small = data_dir / "ceph" / "isbi2015_640x800" / "images" / "151.png"
        if not small.is_file():
            return f"no ISBI image under {data_dir / 'ceph'}"
        gray = cv2.resize(
            cv2.imread(str(small), cv2.IMREAD_GRAYSCALE), CEPH_SIZE, interpolation=cv2.INTER_CUBIC
        )
        source = f"ISBI 2015 {small.name} 640x800 upscaled (cubic) to {CEPH_SIZE[0]}x{CEPH_SIZE[1]}"
    return Input("ceph", png_of(gray), gray.shape[1], gray.shape[0], source)


def pano_input(data_dir: Path) -> Input | str:
    """A 2943 x 1435 panoramic (DC1000 1008, else a resized UFBA-425 image), or why there is none."""
    film = data_dir / "pano" / "dc1000_caries" / "images" / "1008.jpg"
    if film.is_file():
        gray = cv2.imread(str(film), cv2.IMREAD_GRAYSCALE)
        source = f"DC1000 {film.name}, original resolution"
        return Input("pano", png_of(gray), gray.shape[1], gray.shape[0], source)
    images = sorted((data_dir / "pano" / "ufba425" / "images").glob("*.jpg"))
    if not images:
        return f"no UFBA-425 image under {data_dir / 'pano' / 'ufba425' / 'images'}"
    gray = cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE)
    source = (
        f"UFBA-425 {images[0].name} {gray.shape[1]}x{gray.shape[0]} resized (cubic) to "
        f"{PANO_SIZE[0]}x{PANO_SIZE[1]}"
    )
    gray = cv2.resize(gray, PANO_SIZE, interpolation=cv2.INTER_CUBIC)
    return Input("pano", png_of(gray), gray.shape[1], gray.shape[0], source)


INPUTS: dict[str, Callable[[Path], Input | str]] = {"ceph": ceph_input, "pano": pano_input}


def reference_workload() -> Callable[[], float]:
    """A fixed single-threaded numpy workload; returns a callable giving its wall time in ms."""
    values = np.random.default_rng(0).random(REF_ELEMENTS, dtype=np.float32)

    def run() -> float:
        start = time.perf_counter()
        np.sort(values, kind="quicksort")
        return (time.perf_counter() - start) * 1000

    return run


def load_pipeline(task: str, threads: int, precision: str, models_dir: Path) -> Pipeline | str:
    """The pipeline as the worker loads it (ONNX Runtime, `threads` intra-op), or why not."""
    try:
        return registry.load_pipeline(task, models_dir, threads=threads, precision=precision)
    except RuntimeError as exc:
        return str(exc)


def bench(
    pipeline: Pipeline,
    item: Input,
    threads: int,
    precision: str,
    reps: int,
    warmup: int,
    max_pixels: int,
    ref: Callable[[], float],
    findings: list[str] | None = None,
) -> Row:
    calls: list[tuple[float, float]] = []
    inner, extras = pipeline.engine, pipeline.extras
    engine = TimedEngine(inner, calls)
    pipeline.engine = engine
    pipeline.extras = {name: TimedEngine(e, calls) for name, e in extras.items()}
    manifest: ModelManifest = engine.manifest
    bare_inputs = example_inputs(manifest, batch=1, fill="random")
    # Pano finding types to report (default: those the findings models enable by default).
    options = task_pb2.AnalysisOptions(findings=findings or [])
    row = Row(item.task, threads, precision, reps, item.source, item.width, item.height, len(item.png))
    for rep in range(warmup + reps):
        ref_ms = ref()
        start = time.perf_counter()
        engine.inner.infer(bare_inputs)
        bare_ms = (time.perf_counter() - start) * 1000
        calls.clear()
        timer = StageTimer()
        t0 = time.perf_counter()
        image = decode_image(item.png, max_pixels)
        t1 = time.perf_counter()
        result = pipeline.run(image, options, timer)
        t2 = time.perf_counter()
        if not calls:
            raise RuntimeError(f"{item.task}: the pipeline returned without calling its engine")
        inference = sum(b - a for a, b in calls)
        pre = calls[0][0] - t1
        post = (t2 - t1) - pre - inference
        if rep < warmup:
            continue
        sample = {
            "decode": t1 - t0,
            "preprocess": pre,
            "inference": inference,
            "postprocess": post,
            "to_result": t2 - t1,
            "total": t2 - t0,
        }
        for name, seconds in sample.items():
            row.samples_ms.setdefault(name, []).append(seconds * 1000)
        for name, ms in timer.stages_ms.items():
            row.pipeline_stages_ms.setdefault(name, []).append(ms)
        row.ref_ms.append(ref_ms)
        row.bare_ms.append(bare_ms)
        row.engine_calls = len(calls)
        row.result_summary = summarize(result)
    pipeline.engine, pipeline.extras = inner, extras
    return row


def summarize(result: Any) -> str:
    if hasattr(result, "teeth"):
        return f"{len(result.teeth)} teeth"
    if hasattr(result, "landmarks"):
        return f"{len(result.landmarks)} landmarks, {len(result.measurements)} measurements"
    return type(result).__name__


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p90": percentile(values, 90)}


def print_row(row: Row) -> None:
    ref = statistics.median(row.ref_ms)
    bare = statistics.median(row.bare_ms)
    to_result = statistics.median(row.samples_ms["to_result"])
    total = statistics.median(row.samples_ms["total"])
    target = TARGET_MS[row.task]
    print(
        f"\n{row.task}  {row.width}x{row.height} ({row.source}; PNG {row.png_bytes / 1e6:.2f} MB)  "
        f"ORT intra-op threads {row.threads}, {row.precision}, {row.reps} reps  -> {row.result_summary}"
    )
    print(f"  {'stage':<34} {'median ms':>10} {'p90 ms':>9} {'share':>6} {'/ref':>7}")
    for name in (*STAGES, "to_result", "total"):
        s = stats(row.samples_ms[name])
        label = {"to_result": "decoded image to result", "total": "bytes to result (total)"}.get(name, name)
        share = f"{100 * s['median'] / total:5.1f}%"
        print(f"  {label:<34} {s['median']:10.1f} {s['p90']:9.1f} {share:>6} {s['median'] / ref:7.2f}")
    own = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in row.pipeline_stages_ms.items())
    print(f"  pipeline's own StageTimer (median ms): {own}")
    print(
        f"  engine calls per run {row.engine_calls}; bare engine batch 1: {bare:.1f} ms, "
        f"inference / bare {statistics.median(row.samples_ms['inference']) / bare:.2f}x"
    )
    print(
        f"  reference (numpy sort 2**21 float32, 1 thread): {ref:.1f} ms; total / ref {total / ref:.1f}; "
        f"decoded image to result / {target:.0f} ms target: {to_result / target:.2f} "
        f"(noisy-machine dependent)"
    )


def print_precision_ratio(rows: list[Row]) -> None:
    """Decoded image to result of each precision over the first one's, measured in this run."""
    if len(rows) < 2:
        return
    base = rows[0]
    base_ms = statistics.median(base.samples_ms["to_result"])
    for row in rows[1:]:
        ms = statistics.median(row.samples_ms["to_result"])
        print(f"\n  {row.task}, {row.threads} thread(s): decoded image to result {row.precision} / "
              f"{base.precision} = {ms / base_ms:.2f} ({ms:.1f} / {base_ms:.1f} ms, same run)")


def row_json(row: Row) -> dict[str, Any]:
    ref = statistics.median(row.ref_ms)
    out = asdict(row)
    out["summary"] = {
        name: {**stats(values), "over_ref": statistics.median(values) / ref}
        for name, values in row.samples_ms.items()
    }
    out["summary"]["ref_ms_median"] = ref
    out["summary"]["bare_engine_ms_median"] = statistics.median(row.bare_ms)
    target = TARGET_MS[row.task]
    out["summary"]["to_result_over_target"] = statistics.median(row.samples_ms["to_result"]) / target
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--reps", type=int, default=20, help="timed repetitions per pipeline and thread count"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions before them")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ORT intra-op threads")
    parser.add_argument("--only", choices=sorted(PIPELINES), help="one pipeline only")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["int8"],
                        help="ONNX Runtime precision(s) (worker.ort_precision); several: ratios between them")
    parser.add_argument("--json", type=Path, help="write every sample and the summary here")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--findings", nargs="+", metavar="TYPE",
                        help="pano finding types to report (default: the models' default types)")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or min(args.threads) < 1:
        parser.error("--reps >= 1, --warmup >= 0 and --threads >= 1")

    max_pixels = load_config(environ={}).limits.max_image_pixels
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{load:.1f}; onnxruntime {ort.__version__}, numpy {np.__version__}, opencv {cv2.__version__}"
    )
    ref = reference_workload()
    for _ in range(3):
        ref()
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    for task in [args.only] if args.only else ["ceph", "pano"]:
        item = INPUTS[task](args.data_dir)
        if isinstance(item, str):
            skipped[task] = f"data missing: {item}"
            print(f"\n{task}: skipped ({skipped[task]})")
            continue
        for threads in args.threads:
            for precision in args.precision:
                pipeline = load_pipeline(task, threads, precision, args.models_dir)
                if isinstance(pipeline, str):
                    skipped[task] = f"model missing or unloadable: {pipeline}"
                    print(f"\n{task}: skipped ({skipped[task]})")
                    break
                try:
                    row = bench(pipeline, item, threads, precision, args.reps, args.warmup, max_pixels, ref,
                                args.findings)
                finally:
                    for engine in pipeline.engines:
                        engine.close()
                rows.append(row)
                print_row(row)
            print_precision_ratio([r for r in rows if r.task == task and r.threads == threads])
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "load_average": load,
                    "target_ms": TARGET_MS,
                    "rows": [row_json(r) for r in rows],
                    "skipped": skipped,
                },
                indent=1,
            )
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
