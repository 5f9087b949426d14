"""Task store invariants that the rest of the service relies on, against a real redis-server:

- a final task's hash expires result_ttl_s after it FINISHED (not after it was created): the TTL
  restarts at finish, so a task that waited or ran long still keeps its result for the full time;
- a final task's image is dropped;
- a final task without a result (FAILED, CANCELLED) has no artifacts, ever: GetArtifact answers
  10011 (404), not 10010 (409, "not finished yet, ask again").

Every call into TaskStore goes through the helpers at the top (`ref`, `create`, `cancel`), so
that a change of the store's signatures (the task reference gaining its client) is adapted here
in one place.
"""

from __future__ import annotations

import pytest

from dentalai.errors import DentalAIError
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.artifact_rpc import get_artifact
from grpc_server.artifact_store import ArtifactStore
from grpc_server.connection import redis_client
from grpc_server.keys import Keys
from grpc_server.store import TaskStore, now_ts

try:  # the client refactor names a task by (client, taskId)
    from grpc_server.keys import TaskRef
except ImportError:  # before it: by taskId alone
    TaskRef = None

CLIENT = "client-a"
RESULT_TTL_S = 600


def ref(task_id: str):
    return TaskRef(CLIENT, task_id) if TaskRef is not None else task_id


async def create(store: TaskStore, task_id: str, image: bytes = b"image-bytes") -> None:
    task = task_pb2.Task(task_id=task_id, task_type="pano", status=task_pb2.QUEUED, created_at=now_ts())
    if TaskRef is not None:
        outcome, _ = await store.create(ref(task_id), task, image, "", "hash", 100, 100)
    else:
        outcome, _ = await store.create(task, image, "", "hash", 100)
    assert outcome == "created"


async def cancel(store: TaskStore, task_id: str) -> None:
    await store.cancel(ref(task_id))


@pytest.fixture
async def stores(settings):
    settings = settings.with_overrides(key_prefix=f"{settings.key_prefix}inv:")
    redis = redis_client(settings)
    keys = Keys(settings.key_prefix)
    yield redis, keys, TaskStore(redis, keys, RESULT_TTL_S), ArtifactStore(redis, keys, RESULT_TTL_S)
    await redis.aclose()


async def test_finish_restarts_the_ttl_and_drops_the_image(stores) -> None:
    redis, keys, tasks, _ = stores
    outcomes = {
        "ok-1": {"result": results_pb2.PanoResult()},
        "failed-1": {"error": task_pb2.TaskError(code=12001, message="inference failed")},
    }
    for task_id, final in outcomes.items():
        await create(tasks, task_id)
        key = keys.task(ref(task_id))
        assert 0 < await redis.ttl(key) <= RESULT_TTL_S  # expires from creation on
        await tasks.mark_running(ref(task_id), 3)
        # As if the task had waited and run for most of its TTL: 3 s of it are left.
        await redis.expire(key, 3)
        assert await tasks.finish(ref(task_id), **final)
        ttl = await redis.ttl(key)
        assert RESULT_TTL_S - 5 <= ttl <= RESULT_TTL_S, (task_id, ttl)
        assert not await redis.hexists(key, "image"), task_id


async def test_cancel_restarts_the_ttl_and_drops_the_image(stores) -> None:
    redis, keys, tasks, _ = stores
    await create(tasks, "cancel-1")
    key = keys.task(ref("cancel-1"))
    await redis.expire(key, 3)
    await cancel(tasks, "cancel-1")
    assert (await tasks.get(ref("cancel-1"))).status == task_pb2.CANCELLED
    assert RESULT_TTL_S - 5 <= await redis.ttl(key) <= RESULT_TTL_S
    assert not await redis.hexists(key, "image")


async def test_a_second_finish_changes_nothing(stores) -> None:
    """The first final state wins (a task taken over by a second worker); the TTL is not restarted
    again by the loser."""
    redis, keys, tasks, _ = stores
    await create(tasks, "twice-1")
    await tasks.mark_running(ref("twice-1"), 3)
    assert await tasks.finish(ref("twice-1"), error=task_pb2.TaskError(code=12002, message="timeout"))
    key = keys.task(ref("twice-1"))
    await redis.expire(key, 50)
    assert not await tasks.finish(ref("twice-1"), result=results_pb2.PanoResult())
    task = await tasks.get(ref("twice-1"))
    assert task.status == task_pb2.FAILED and task.error.code == 12002
    assert await redis.ttl(key) <= 50


async def test_artifacts_of_a_task_without_result_are_404_10011_not_409(stores) -> None:
    """FAILED and CANCELLED are final: their artifacts will never exist (10011 -> 404). 10010 (409)
    is only for a task still QUEUED or RUNNING, whose artifacts may yet come."""
    _, _, tasks, files = stores
    for task_id in ("art-failed", "art-cancelled", "art-queued", "art-running"):
        await create(tasks, task_id)
    await tasks.mark_running(ref("art-failed"), 3)
    error = task_pb2.TaskError(code=11002, message="image could not be decoded")
    assert await tasks.finish(ref("art-failed"), error=error)
    await cancel(tasks, "art-cancelled")
    await tasks.mark_running(ref("art-running"), 3)
    expected = {"art-failed": 10011, "art-cancelled": 10011, "art-queued": 10010, "art-running": 10010}
    for task_id, code in expected.items():
        for name in ("overlay.png", "report.pdf", "report.dcm", "overlay.dcm"):
            with pytest.raises(DentalAIError) as err:
                await get_artifact(tasks, files, ref(task_id), name)
            assert err.value.code == code, (task_id, name, err.value)
    with pytest.raises(DentalAIError) as err:
        await get_artifact(tasks, files, ref("no-such-task"), "report.pdf")
    assert err.value.code == 10009
