"""Redis bytes per finished task against the upload (issue 31 item 5): the real artifact step
(`artifacts.make.make_artifacts`, as `grpc_server/artifact_step.py` runs it) on real films, stored
through `grpc_server.artifact_store.ArtifactStore` into a redis-server this script starts, and
`MEMORY USAGE` of the task's artifacts hash and of its task hash (the finished Task with its
result, as the store keeps it; the image is dropped when a task is final) against the target
of 2 x the upload + 1 MiB.

    .venv/bin/python bench/storage.py                    # the shipped models' results, ~1 minute
    .venv/bin/python bench/storage.py --sample-results   # tests/reports/samples.py results, no models
    .venv/bin/python bench/storage.py --films 5 --json out.json

Films (../shared/data): ISBI 100.png (ceph, full resolution), DC1000 1008.jpg (pano, gray JPEG),
Tufts 1.jpg-like (the first Tufts pano: a small colour JPEG), and a DICOM input: the data has none,
so ISBI 101.png made into an uncompressed DICOM with a patient's identifiers. `--films N` takes the
first N of each set. The policy is the default client's (de-identified); `--keep-identifiers` runs
the other one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from artifacts.make import Source, make_artifacts  # noqa: E402
from dentalai.task_json import message_dict  # noqa: E402
from dentalai.v1 import task_pb2  # noqa: E402
from grpc_server.artifact_store import ArtifactStore  # noqa: E402
from grpc_server.decode import decode_image  # noqa: E402
from grpc_server.keys import Keys, TaskRef  # noqa: E402
from pipelines.base_pipeline import DecodedImage  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MIB = 1 << 20
TTL_S = 7 * 24 * 3600  # tasks.result_ttl_s's default: what the bytes are kept for


def target(upload: int) -> int:
    return 2 * upload + MIB


@dataclass
class Film:
    name: str
    kind: str  # ceph or pano
    raw: bytes


def dicom_of(png: Path) -> bytes:
    """An uncompressed DICOM of a PNG film with a patient's identifiers, as a PACS would send it."""
    import cv2
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    pixels = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", "P-0042", "19900101", "F"
    ds.AccessionNumber, ds.StudyID, ds.StudyDate, ds.StudyTime = "ACC-9", "S1", "20261201", "101500"
    ds.ReferringPhysicianName, ds.Modality, ds.PixelSpacing = "Who^Doctor", "OT", [0.1, 0.1]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def films(count: int) -> list[Film]:
    sets = [
        ("ceph", sorted((DATA / "ceph" / "isbi2015_fullres" / "images").glob("*.png"))),
        ("pano", sorted((DATA / "pano" / "dc1000_caries" / "images").glob("*.jpg"))),
        ("pano", sorted((DATA / "pano" / "tufts" / "images").glob("*.jpg"))),
    ]
    out = []
    for kind, paths in sets:
        for path in paths[:count]:
            out.append(Film(f"{path.parent.parent.name}/{path.name}", kind, path.read_bytes()))
    isbi = sets[0][1]
    for path in isbi[len(isbi) - count :]:  # the ISBI films after those used as PNG
        out.append(Film(f"dicom from isbi {path.name}", "ceph", dicom_of(path)))
    if not out:
        raise SystemExit(f"no films under {DATA}")
    return out


class Results:
    """Results for a decoded film: the shipped models (as a worker loads them), or the samples."""

    def __init__(self, samples: bool) -> None:
        self.samples = samples
        self.pipelines: dict = {}

    def __call__(self, kind: str, image: DecodedImage) -> tuple[dict, dict, Message]:
        """(result as proto3 JSON, ModelInfo as proto3 JSON, result message)."""
        if self.samples:
            from google.protobuf import json_format

            from dentalai.v1 import results_pb2
            from tests.reports import samples

            message = samples.ceph_result() if kind == "ceph" else json_format.ParseDict(
                samples.pano_result(), results_pb2.PanoResult()
            )
            return message_dict(message), {"name": "samples", "version": "0"}, message
        if kind not in self.pipelines:
            from pipelines import registry

            self.pipelines[kind] = registry.load_pipeline(kind, ROOT / "models", threads=2)
        pipeline = self.pipelines[kind]
        result: Message = pipeline.run(image, task_pb2.AnalysisOptions())
        return message_dict(result), message_dict(pipeline.model_info), result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(directory: Path) -> tuple[subprocess.Popen, int]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
            "--appendonly", "no"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("redis-server did not start")


def finished_task(task_id: str, kind: str, result: Message, ready: list[str]) -> bytes:
    """The serialized Task the store keeps for a finished task (its `task` field)."""
    task = task_pb2.Task(task_id=task_id, task_type=kind, status=task_pb2.SUCCEEDED)
    getattr(task, kind).CopyFrom(result)
    task.artifacts.ready.extend(sorted(ready))
    return task.SerializeToString()


async def measure(port: int, rows: list[dict], args: argparse.Namespace) -> None:
    redis = aioredis.Redis(host="127.0.0.1", port=port)
    keys = Keys("bench:")
    store = ArtifactStore(redis, keys, TTL_S)
    results = Results(args.sample_results)
    for number, film in enumerate(films(args.films)):
        image = decode_image(film.raw, 10**9)
        data, model, result = results(film.kind, image)
        ref = TaskRef("bench-client", f"task-{number}")
        src = Source(
            kind=film.kind, data=data, pixels=image.pixels, raw=film.raw, source_format=image.source_format,
            task_id=ref.task_id, metadata={"patientRef": "A-17"}, model=model,
            dicom_spacing_mm=image.pixel_spacing_mm, deidentify=not args.keep_identifiers,
            owner=ref.client_id,
        )  # fmt: skip
        started = time.perf_counter()
        files = make_artifacts(src, args.max_side)
        made_ms = (time.perf_counter() - started) * 1000
        await store.put(ref, files)
        task_key = keys.task(ref)
        await redis.hset(task_key, mapping={
            "task": finished_task(ref.task_id, film.kind, result, list(files)),
            "request_hash": hashlib.sha256(film.raw).hexdigest(),
        })  # fmt: skip
        artifacts_mem = await redis.memory_usage(keys.artifacts(ref), samples=0)
        task_mem = await redis.memory_usage(task_key, samples=0)
        total = artifacts_mem + task_mem
        row = {
            "film": film.name, "kind": film.kind, "format": image.source_format,
            "size": f"{image.pixels.shape[1]}x{image.pixels.shape[0]}", "upload": len(film.raw),
            "files": {k: len(v) for k, v in sorted(files.items())}, "artifacts_memory": artifacts_mem,
            "task_memory": task_mem, "total": total, "target": target(len(film.raw)),
            "ratio": round(total / target(len(film.raw)), 3), "made_ms": round(made_ms),
        }  # fmt: skip
        rows.append(row)
        verdict = "met" if total <= row["target"] else "NOT met"
        print(
            f"{film.name} ({film.kind}, {image.source_format} {row['size']}): upload {len(film.raw):,} B; "
            f"Redis {total:,} B (artifacts {artifacts_mem:,} + task {task_mem:,}); "
            f"target {row['target']:,} B; ratio {row['ratio']} -> {verdict}\n  files: {row['files']}"
        )
    await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--films", type=int, default=1, help="films per set (default 1)")
    parser.add_argument("--max-side", type=int, default=1600, help="artifacts.max_side")
    parser.add_argument("--sample-results", action="store_true", help="no models: the tests' sample results")
    parser.add_argument("--keep-identifiers", action="store_true", help="deidentify off")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_redis(Path(tmp))
        try:
            asyncio.run(measure(port, rows, args))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    met = sum(r["total"] <= r["target"] for r in rows)
    print(f"target met for {met} of {len(rows)} films")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
