"""The worker's artifact step: after a result, before the task is finished (and its callback
scheduled), make the artifacts and store them. A failure here never fails the task: the result
stands and Task.artifacts.error says why (13001)."""

from __future__ import annotations

import asyncio
import logging
import time

from google.protobuf import json_format
from google.protobuf.message import Message

from artifacts.make import Source, make_artifacts
from dentalai.config import Settings
from dentalai.errors import ErrorCode
from dentalai.task_json import message_dict
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.artifact_store import ArtifactStore
from grpc_server.keys import TaskRef
from pipelines.base_pipeline import DecodedImage

log = logging.getLogger(__name__)


def patient_data_policy(
    settings: Settings, ref: TaskRef, options: task_pb2.AnalysisOptions
) -> tuple[bool, tuple[str, ...]]:
    """(de-identify, metadata keys the PDF may print) for a task: the request's option, else its
    client's setting. A client no longer configured gets the safe answer (de-identified, none)."""
    try:
        client = settings.client(ref.client_id)
    except KeyError:
        return True, ()
    deidentify = options.deidentify if options.HasField("deidentify") else client.deidentify
    return deidentify, tuple(client.pdf_metadata_keys)


async def make_and_store(
    settings: Settings,
    store: ArtifactStore,
    ref: TaskRef,
    task: task_pb2.Task,
    result: Message,
    model: results_pb2.ModelInfo | None,
    raw: bytes,
    image: DecodedImage,
) -> task_pb2.TaskArtifacts:
    started = time.monotonic()
    deidentify, pdf_keys = patient_data_policy(settings, ref, task.options)
    source = Source(
        kind=task.task_type,
        data=message_dict(result),
        pixels=image.pixels,
        raw=raw,
        source_format=image.source_format,
        task_id=task.task_id,
        metadata=json_format.MessageToDict(task.metadata) if task.HasField("metadata") else {},
        model=message_dict(model) if model else {},
        dicom_spacing_mm=image.pixel_spacing_mm,
        deidentify=deidentify,
        pdf_metadata_keys=pdf_keys,
        owner=ref.client_id,
    )
    try:
        files = await asyncio.to_thread(make_artifacts, source, settings.artifacts.max_side)
    except Exception as exc:  # any renderer bug: the result is worth more than its pictures
        log.exception("artifacts could not be made")
        message = f"artifacts could not be made ({type(exc).__name__}: {str(exc)[:200]})"
        return task_pb2.TaskArtifacts(error=task_pb2.TaskError(code=ErrorCode.INTERNAL, message=message))
    await store.put(ref, files)
    log.info(
        "artifacts stored",
        extra={
            "artifactsMs": int((time.monotonic() - started) * 1000),
            "bytes": sum(map(len, files.values())),
        },
    )
    return task_pb2.TaskArtifacts(ready=sorted(files))
