"""`dentalai analyze PATH... --type ceph|pano`: batch inference from the shell.

In process by default (the worker's decoder, then the pipeline from `pipelines.registry`), or
through a running service with `--server HOST:PORT` (gRPC `Analyze`). For each image writes
`OUT/<stem>.json` (the result `data`, proto3 JSON mapping) and `OUT/<stem>.png` (the overlay);
`--report pdf,dcm` adds the PDF report and the DICOM SR and captures (dentalai/report_files.py).
Exits 1 when any file failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from google.protobuf.message import Message

from dentalai import overlay
from dentalai.contract import FINDING_TYPES
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.report_files import parse_formats, write_reports
from dentalai.task_json import message_dict
from dentalai.v1 import results_pb2, task_pb2
from pipelines.registry import TASK_TYPES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}
# The contract requires a callbackUrl; `.invalid` never resolves (RFC 2606), so nothing is sent
# anywhere unless DENTALAI_CALLBACK_URL or --callback-url names a real receiver.
DEFAULT_CALLBACK_URL = "https://callback.invalid/dentalai-cli"


@dataclass
class Outcome:
    path: Path
    ok: bool
    code: int = 0
    message: str = ""
    seconds: float = 0.0


class Runner(Protocol):
    def __call__(self, path: Path, options: task_pb2.AnalysisOptions) -> tuple[Message, np.ndarray]: ...


def collect_paths(patterns: Iterable[str]) -> tuple[list[Path], list[Outcome]]:
    """Files, folders (recursively, image suffixes only) and globs; unmatched ones as failures."""
    found: dict[Path, None] = {}
    missing: list[Outcome] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(
                Path(p)
                for p in glob.glob(pattern, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
        if not matches:
            missing.append(Outcome(path, False, int(ErrorCode.INVALID_PARAMETER), "no image file matches"))
        found.update(dict.fromkeys(matches))
    return list(found), missing


def local_runner(task_type: str) -> tuple[Runner, Callable[[], None]]:
    """The worker's processing step (grpc_server.processing) on each file, with the registry's
    pipeline loaded once for all files."""
    from dentalai.config import load_config  # imported late so that --server needs no local setup
    from grpc_server.processing import process
    from pipelines.registry import load_pipelines

    settings = load_config()
    loaded = load_pipelines(settings, [task_type])
    pipeline = loaded.pipelines.get(task_type)
    if pipeline is None:
        reason = loaded.unavailable.get(task_type, "not registered")
        raise DentalAIError(
            ErrorCode.MODEL_UNAVAILABLE, f"model for taskType {task_type!r} is not available ({reason})"
        )

    def run(path: Path, options: task_pb2.AnalysisOptions) -> tuple[Message, np.ndarray]:
        run.model_info = pipeline.model_info  # type: ignore[attr-defined]  # for --report
        result, image = process(pipeline, path.read_bytes(), options, settings.limits)
        return result, image.pixels

    return run, loaded.close


def server_runner(
    task_type: str, target: str, token: str | None, callback_url: str, timeout: float
) -> tuple[Runner, Callable[[], None]]:
    """Submit each file through gRPC `Analyze` and wait for its final state."""
    from dentalai.client import AnalysisClient, result_of

    client = AnalysisClient(target, token=token, timeout=timeout)

    def run(path: Path, options: task_pb2.AnalysisOptions) -> tuple[Message, np.ndarray]:
        raw = path.read_bytes()
        task = client.analyze(
            task_type,
            image_data=raw,
            callback_url=callback_url,
            pixel_spacing_mm=options.pixel_spacing_mm if options.HasField("pixel_spacing_mm") else None,
            tooth_numbering=results_pb2.ToothNumbering.Name(options.tooth_numbering)
            if options.tooth_numbering
            else None,
            findings=list(options.findings),
            timeout=timeout,
        )
        result = result_of(task)
        run.model_info = task.model  # type: ignore[attr-defined]  # for --report
        if task.status != task_pb2.SUCCEEDED or result is None:
            code = task.error.code or int(ErrorCode.INTERNAL)
            status = task_pb2.TaskStatus.Name(task.status)
            raise DentalAIError(ErrorCode(code), task.error.message or f"task ended {status}")
        return result, overlay.decode_for_display(raw)

    return run, client.close


def progress(items: Sequence[Path], enabled: bool) -> Iterator[Path]:
    """tqdm on stderr when installed (the `ui` extra), else a one-line counter."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        for i, item in enumerate(items, 1):
            print(f"\r[{i}/{len(items)}] {item.name[:60]:<60}", end="", file=sys.stderr, flush=True)
            yield item
        print(file=sys.stderr)
        return
    yield from tqdm(items, unit="image", file=sys.stderr)


def analyze_one(
    runner: Runner,
    path: Path,
    options: task_pb2.AnalysisOptions,
    out: Path,
    task_type: str,
    reports: tuple[str, ...] = (),
) -> Outcome:
    start = time.perf_counter()
    try:
        result, pixels = runner(path, options)
        (out / f"{path.stem}.json").write_text(json.dumps(message_dict(result), indent=2) + "\n")
        (out / f"{path.stem}.png").write_bytes(overlay.render_png(pixels, result))
        if reports:
            write_reports(out, path, task_type, result, pixels, reports, getattr(runner, "model_info", None))
    except DentalAIError as err:
        return Outcome(path, False, int(err.code), err.message, time.perf_counter() - start)
    except OSError as err:
        return Outcome(path, False, int(ErrorCode.INVALID_PARAMETER), str(err), time.perf_counter() - start)
    except Exception as err:  # one bad file must not stop a batch; 13001 like the worker
        return Outcome(path, False, int(ErrorCode.INTERNAL), f"{type(err).__name__}: {err}")
    return Outcome(path, True, seconds=time.perf_counter() - start)


def _finding_types(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FINDING_TYPES))
    if unknown:
        known = ", ".join(FINDING_TYPES)
        raise argparse.ArgumentTypeError(f"unknown finding type {', '.join(unknown)} (known: {known})")
    return kinds


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dentalai analyze", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    parser.add_argument("--type", dest="task_type", required=True, choices=TASK_TYPES)
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--pixel-spacing", type=float, metavar="MM", help="pixel spacing in mm (> 0)")
    parser.add_argument(
        "--numbering", choices=["FDI", "UNIVERSAL"], type=str.upper, help="pano tooth numbers"
    )
    parser.add_argument(
        "--findings", type=_finding_types, default=(), metavar="caries,periapical",
        help="pano finding types to report (comma list); default: the findings model's default types",
    )
    parser.add_argument("--server", metavar="HOST:PORT", help="run through this gRPC service instead")
    parser.add_argument("--token", default=os.environ.get("DENTALAI_TOKEN"), help="bearer token (--server)")
    parser.add_argument(
        "--callback-url",
        default=os.environ.get("DENTALAI_CALLBACK_URL", DEFAULT_CALLBACK_URL),
        help="callbackUrl sent with --server submissions",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per image with --server")
    parser.add_argument(
        "--report", type=parse_formats, default=(), metavar="pdf,dcm",
        help="also write OUT/<stem>.pdf and/or the DICOM SR <stem>.dcm with <stem>.overlay.dcm",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.pixel_spacing is not None and args.pixel_spacing <= 0:
        parser.error("--pixel-spacing must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    options = task_pb2.AnalysisOptions()
    if args.pixel_spacing is not None:
        options.pixel_spacing_mm = args.pixel_spacing
    if args.numbering:
        options.tooth_numbering = results_pb2.ToothNumbering.Value(args.numbering)
    options.findings.extend(args.findings)
    paths, outcomes = collect_paths(args.paths)
    close: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if args.server:
            runner, close = server_runner(
                args.task_type, args.server, args.token, args.callback_url, args.timeout
            )
        else:
            runner, close = local_runner(args.task_type)
    except DentalAIError as err:
        # No model for this taskType (12004) and the like: every file fails the same way.
        runner = _failing(err)
    except ImportError as err:
        runner = _failing(DentalAIError(ErrorCode.INTERNAL, f"in-process analysis unavailable: {err}"))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for path in progress(paths, enabled=not args.no_progress and bool(paths)):
            outcomes.append(analyze_one(runner, path, options, args.out, args.task_type, args.report))
    finally:
        close()
    return summarize(outcomes, args.out)


def _failing(err: DentalAIError) -> Runner:
    def run(path: Path, options: task_pb2.AnalysisOptions) -> tuple[Message, np.ndarray]:
        raise err

    return run


def summarize(outcomes: list[Outcome], out: Path) -> int:
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    mean = sum(o.seconds for o in ok) / len(ok) if ok else 0.0
    print(
        f"{len(ok)} succeeded, {len(failed)} failed; results in {out}/"
        + (f" ({mean:.2f} s/image)" if ok else "")
    )
    for o in failed:
        print(f"FAILED {o.path}: {o.code} {o.message}")
    return 1 if failed or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
