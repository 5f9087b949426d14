"""Task store transitions at their edges, against a real redis-server (found unguarded by mutation
testing, tools/mutants.yaml):

- the delivery cap allows exactly max_deliveries deliveries, the next one is abandoned;
- a cancelled task's callback cannot be re-sent (cancelling promises no callback);
- releasing a task that another worker finished meanwhile changes nothing;
- a finish that races another writer of the task hash is retried, not dropped;
- a failed task's artifacts answer 10011 with the reason: the task failed;
- erasing a finished task takes its callback off the schedule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis as sync_redis

from dentalai.config import Settings
from dentalai.errors import DentalAIError
from dentalai.v1 import results_pb2, task_pb2
from grpc_server import store as store_module
from grpc_server.artifact_rpc import get_artifact
from grpc_server.artifact_store import ArtifactStore
from grpc_server.connection import redis_client
from grpc_server.keys import Keys, TaskRef
from grpc_server.store import RunOutcome, TaskStore, now_ts

REF = TaskRef("clinic", "t-1")


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[TaskStore]:
    redis = redis_client(settings)
    store = TaskStore(redis, Keys(settings.key_prefix), 600)
    task = task_pb2.Task(
        task_id=REF.task_id, task_type="pano", status=task_pb2.QUEUED, created_at=now_ts(),
        callback=task_pb2.CallbackInfo(url="https://hooks.example.com/cb", state=task_pb2.NOT_DUE),
    )
    outcome, _ = await store.create(REF, task, b"img", "", "h", 100, 100)
    assert outcome == "created"
    yield store
    await redis.aclose()


async def test_the_delivery_cap_allows_exactly_max_deliveries(store: TaskStore) -> None:
    for delivery in (1, 2, 3):  # the first delivery and two takeovers of a crashed worker's job
        outcome, stored = await store.mark_running(REF, 3)
        assert outcome == RunOutcome.RUN and stored is not None, delivery
        assert stored.task.deliveries == delivery
    outcome, stored = await store.mark_running(REF, 3)
    assert outcome == RunOutcome.ABANDON and stored is not None and stored.task.deliveries == 3


async def test_a_cancelled_tasks_callback_cannot_be_resent(store: TaskStore) -> None:
    task, erased = await store.cancel(REF)
    assert task.status == task_pb2.CANCELLED and not erased
    with pytest.raises(DentalAIError) as err:
        await store.resend(REF)
    assert err.value.code == 10010
    assert await store.redis.zscore(store.keys.callback_schedule, str(REF)) is None


async def test_releasing_a_task_finished_meanwhile_changes_nothing(store: TaskStore) -> None:
    await store.mark_running(REF, 3)
    assert await store.finish(REF, result=results_pb2.PanoResult())  # by the worker that took it over
    assert not await store.release(REF)  # the first worker stops gracefully afterwards
    task = await store.get(REF)
    assert task is not None and task.status == task_pb2.SUCCEEDED and task.deliveries == 1


async def test_a_finish_racing_another_writer_is_retried(
    store: TaskStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer changes the task hash between finish's read (WATCH) and its write (EXEC): the
    transaction fails and finish must read again and write, not give up (the result would be lost)."""
    await store.mark_running(REF, 3)
    other = sync_redis.Redis.from_url(settings.redis_url)
    real_fill_timing = store_module._fill_timing
    raced = []

    def fill_timing_with_a_race(task: task_pb2.Task) -> None:
        if not raced:  # once: inside finish's first attempt, after its WATCH
            other.hset(store.keys.task(REF), "raced", "1")
            raced.append(True)
        real_fill_timing(task)

    monkeypatch.setattr(store_module, "_fill_timing", fill_timing_with_a_race)
    try:
        assert await store.finish(REF, result=results_pb2.PanoResult())
    finally:
        other.close()
    assert raced
    task = await store.get(REF)
    assert task is not None and task.status == task_pb2.SUCCEEDED
    assert task.callback.state == task_pb2.PENDING
    assert await store.redis.hget(store.keys.task(REF), "raced") == b"1"


async def test_a_failed_tasks_artifacts_say_that_it_failed(store: TaskStore) -> None:
    await store.mark_running(REF, 3)
    assert await store.finish(REF, error=task_pb2.TaskError(code=11002, message="not an image"))
    files = ArtifactStore(store.redis, store.keys, 600)
    with pytest.raises(DentalAIError) as err:
        await get_artifact(store, files, REF, "report.pdf")
    assert err.value.code == 10011 and "FAILED" in err.value.message, err.value.message


async def test_erasing_a_finished_task_takes_it_off_the_callback_schedule(store: TaskStore) -> None:
    await store.mark_running(REF, 3)
    assert await store.finish(REF, result=results_pb2.PanoResult())
    schedule = store.keys.callback_schedule
    assert await store.redis.zscore(schedule, str(REF)) is not None  # its callback is due
    task, erased = await store.cancel(REF)
    assert erased and task.status == task_pb2.SUCCEEDED
    assert await store.redis.zscore(schedule, str(REF)) is None
    assert not await store.redis.exists(store.keys.task(REF))
