"""Artifacts that cannot be made never fail the task: the result stays, GET says why, and the
routes answer 404 / 10011 (real Redis; the renderer gets an image it cannot draw on)."""

from __future__ import annotations

import numpy as np
import pytest

from dentalai.errors import DentalAIError
from dentalai.v1 import task_pb2
from grpc_server.artifact_rpc import get_artifact
from grpc_server.artifact_step import make_and_store
from grpc_server.artifact_store import ArtifactStore
from grpc_server.connection import redis_client
from grpc_server.keys import Keys, TaskRef
from grpc_server.store import TaskStore, now_ts
from pipelines.base_pipeline import DecodedImage
from tests.reports import samples


async def test_a_renderer_failure_keeps_the_result_and_says_why(settings) -> None:
    settings = settings.with_overrides(key_prefix="artfail:")
    redis = redis_client(settings)
    keys = Keys(settings.key_prefix)
    tasks, files = TaskStore(redis, keys, 600), ArtifactStore(redis, keys, 600)
    task = task_pb2.Task(task_id="broken-1", task_type="ceph", status=task_pb2.QUEUED, created_at=now_ts())
    ref = TaskRef("clinic", "broken-1")
    await tasks.create(ref, task, b"x", "", "hash", 100, 100)
    await tasks.mark_running(ref, 3)
    result = samples.ceph_result()
    unusable = DecodedImage(pixels=np.zeros((4, 4, 4, 4), np.float32), source_format="png")
    info = await make_and_store(settings, files, ref, task, result, None, b"", unusable)
    assert info.error.code == 13001 and "could not be made" in info.error.message
    assert not info.ready
    assert await tasks.finish(ref, result=result, artifacts=info)
    stored = await tasks.get(ref)
    assert stored.status == task_pb2.SUCCEEDED and len(stored.ceph.landmarks) == 19
    assert stored.artifacts.error.message == info.error.message
    with pytest.raises(DentalAIError) as err:
        await get_artifact(tasks, files, ref, "report.pdf")
    assert err.value.code == 10011 and info.error.message in err.value.message
    await redis.aclose()
