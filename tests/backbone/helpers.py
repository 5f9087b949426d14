"""Helpers of the backbone tests: images, a gRPC stub, error codes of failed calls."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from PIL import Image

from dentalai.client import error_from_rpc
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import task_pb2


def png_bytes(width: int = 320, height: int = 300, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def stub(target: str, token: str | None = None) -> tuple[grpc.Channel, pb_grpc.AnalysisServiceStub]:
    channel = grpc.insecure_channel(target)
    return channel, pb_grpc.AnalysisServiceStub(channel)


def submit_request(hook: str, **fields: Any) -> pb.SubmitAnalysisRequest:
    values: dict[str, Any] = {"task_type": "pano", "image_data": png_bytes(), "callback_url": hook}
    values.update(fields)
    return pb.SubmitAnalysisRequest(**{k: v for k, v in values.items() if v is not None})


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, int, list[tuple[str, str]]]:
    """(gRPC status, contract code, field details) of a call that must fail."""
    try:
        call()
    except grpc.RpcError as err:
        error = error_from_rpc(err)
        return err.code(), int(error.code), error.details
    raise AssertionError("call succeeded")


def wait_status(
    client: pb_grpc.AnalysisServiceStub,
    task_id: str,
    statuses: set[int],
    timeout: float = 30.0,
    metadata: tuple[tuple[str, str], ...] = (),
) -> task_pb2.Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.GetTask(pb.GetTaskRequest(task_id=task_id), metadata=metadata).task
        if task.status in statuses:
            return task
        time.sleep(0.05)
    raise TimeoutError(f"task {task_id} still {task_pb2.TaskStatus.Name(task.status)}")

