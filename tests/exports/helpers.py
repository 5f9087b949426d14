"""Finished tasks with real DICOM results in a real Redis, an in-process exporter, and Orthanc
restarted on its own ports (tests/dicom/orthanc.py starts it)."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from artifacts.make import Source, make_artifacts
from dentalai.config import Settings
from dentalai.task_json import message_dict
from dentalai.v1 import task_pb2
from grpc_server.artifact_store import ArtifactStore
from grpc_server.connection import redis_client
from grpc_server.exports import Exporter
from grpc_server.keys import Keys, TaskRef
from grpc_server.store import TaskStore, now_ts
from tests.callbacks.helpers import running_loop
from tests.dicom.orthanc import ORTHANC, Orthanc
from tests.reports import samples
from tests.security.dicom_samples import native

CLIENT = "clinic"
DCIODVFY = shutil.which("dciodvfy")


@dataclass(frozen=True)
class Results:
    """A DICOM input as the PACS holds it, and the artifacts a client that keeps identifiers gets."""

    source: bytes
    header: pydicom.Dataset
    files: dict[str, bytes]

    def uid(self, name: str) -> str:
        return str(pydicom.dcmread(io.BytesIO(self.files[name]), stop_before_pixels=True).SOPInstanceUID)


def make_results() -> Results:
    pixels = np.ascontiguousarray(samples.ceph_image(), dtype=np.uint8)
    source = native(
        pixels, ExplicitVRLittleEndian, StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
        PatientName="Doe^Jane", PatientID="P-0042", PatientBirthDate="19900101", PatientSex="F",
        StudyDate="20261201", StudyTime="101500", StudyID="S1", AccessionNumber="ACC-9",
        ReferringPhysicianName="Who^Doctor", PixelSpacing=[0.1, 0.1],
    )  # fmt: skip
    data = message_dict(samples.ceph_result())
    model = {"name": "ceph-landmarks", "version": "1.1.0"}
    src = Source("ceph", data, pixels, source, "dicom", f"t-{uuid.uuid4().hex[:8]}", {}, model,
                 deidentify=False, owner=CLIENT)  # fmt: skip
    header = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    return Results(source, header, make_artifacts(src, 1600))


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client(settings)
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(self.redis, self.keys, settings.tasks.result_ttl_s)
        self.artifacts = ArtifactStore(self.redis, self.keys, settings.tasks.result_ttl_s)

    async def finished(
        self, files: dict[str, bytes], export_to: str, failed: bool = False, callback_url: str = ""
    ) -> TaskRef:
        """A ceph task of CLIENT, run and finished as the worker does: artifacts stored first."""
        ref = TaskRef(CLIENT, f"t-{uuid.uuid4().hex[:12]}")
        task = task_pb2.Task(
            task_id=ref.task_id, task_type="ceph", status=task_pb2.QUEUED, created_at=now_ts(),
            callback=task_pb2.CallbackInfo(url=callback_url, state=task_pb2.NOT_DUE),
        )  # fmt: skip
        await self.store.create(ref, task, b"img", "", "h", 1000, 1000)
        await self.store.mark_running(ref, 3)
        if failed:
            error = task_pb2.TaskError(code=11002, message="not an image")
            await self.store.finish(ref, error=error, export_to=export_to)
            return ref
        await self.artifacts.put(ref, files)
        ready = task_pb2.TaskArtifacts(ready=sorted(files))
        await self.store.finish(ref, result=samples.ceph_result(), artifacts=ready, export_to=export_to)
        return ref

    async def export(self, ref: TaskRef) -> task_pb2.ExportInfo:
        task = await self.store.get(ref)
        assert task is not None
        return task.export

    async def wait_export(
        self, ref: TaskRef, states: set[int], timeout: float = 30, attempts: int = 0
    ) -> task_pb2.ExportInfo:
        """Wait until the export is in one of `states` (and has made at least `attempts`)."""
        deadline = time.monotonic() + timeout
        while True:
            info = await self.export(ref)
            if info.state in states and info.attempts >= attempts:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"export {task_pb2.ExportState.Name(info.state)}: {info}")
            await asyncio.sleep(0.05)

    async def scheduled(self) -> list[str]:
        return [m.decode() for m in await self.redis.zrange(self.keys.export_schedule, 0, -1)]

    async def stats(self) -> dict[str, int]:
        keys = ("delivered", "retry", "failed", "exhausted")
        values = [await self.redis.get(self.keys.export_stat(k)) for k in keys]
        return {k: int(v or 0) for k, v in zip(keys, values, strict=True)}


@asynccontextmanager
async def running_exporter(
    settings: Settings, exporter_cls: type[Exporter] = Exporter
) -> AsyncIterator[Exporter]:
    async with running_loop(settings, exporter_cls, stop_timeout_s=60) as exporter:
        yield exporter


def restart(orthanc: Orthanc, timeout: float = 60) -> None:
    """Start a stopped Orthanc again with its config: the same ports, AE title and storage."""
    log = open(orthanc.log_path, "ab")  # noqa: SIM115 (lives as long as the process)
    orthanc.proc = subprocess.Popen(
        [ORTHANC, "--verbose", str(orthanc.directory / "orthanc.json")],
        stdout=log, stderr=subprocess.STDOUT, cwd=orthanc.directory,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(orthanc.url + "/system", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"Orthanc did not come back:\n{orthanc.log()[-2000:]}")


def study_instances(orthanc: Orthanc, study_uid: str) -> dict[str, dict[str, Any]]:
    """SOP Instance UID -> simplified tags of every instance Orthanc holds in that study."""
    out = {}
    for instance_id in orthanc.find_instances(StudyInstanceUID=study_uid):
        tags = orthanc.instance_tags(instance_id)
        out[tags["SOPInstanceUID"]] = {**tags, "orthancId": instance_id}
    return out


def dciodvfy_errors(tmp: Path, name: str, data: bytes) -> list[str]:
    assert DCIODVFY, "dciodvfy missing: apt-get install dicom3tools (scripts/setup.sh)"
    path = tmp / name
    path.write_bytes(data)
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    assert lines, "dciodvfy printed nothing"
    return [line for line in lines if line.startswith("Error")]
