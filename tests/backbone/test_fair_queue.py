"""The per-client queue (grpc_server/queue.py) against a real redis-server: clients are served in
turn whatever their backlog, each has its own cap, and the single-stream guarantees hold per client
(takeover of a dead worker's job, hand-back on a stop, cancel while queued, dead letters).

The worker paths run the real Worker.handle with a pipeline that records its calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from google.protobuf.message import Message

from dentalai.config import Settings
from dentalai.v1 import results_pb2, task_pb2
from grpc_server.connection import redis_client
from grpc_server.keys import CONSUMER_GROUP, Keys, TaskRef
from grpc_server.queue import JobQueue
from grpc_server.store import CreateOutcome, TaskStore, now_ts
from grpc_server.worker import Worker
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer
from pipelines.registry import LoadedPipelines
from tests.backbone.helpers import png_bytes

TOTAL_CAP = 1000


class Parts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_client(settings)
        self.keys = Keys(settings.key_prefix)
        self.store = TaskStore(self.redis, self.keys, 600)
        self.queue = JobQueue(self.redis, self.keys)

    async def submit(self, client: str, task_id: str, share: int = 500, total: int = TOTAL_CAP) -> str:
        task = task_pb2.Task(task_id=task_id, task_type="pano", status=task_pb2.QUEUED, created_at=now_ts())
        ref = TaskRef(client, task_id)
        outcome, _ = await self.store.create(ref, task, png_bytes(300, 300), "", "h", total, share)
        return outcome


@pytest.fixture
async def parts(settings: Settings) -> AsyncIterator[Parts]:
    p = Parts(settings)
    yield p
    await p.redis.aclose()


async def test_a_backlog_does_not_hold_another_clients_task(parts: Parts) -> None:
    for i in range(200):
        assert await parts.submit("clinic-a", f"a{i}") == CreateOutcome.CREATED
    first = await parts.queue.read("w1", 10)
    assert first is not None and first.ref == TaskRef("clinic-a", "a0")
    assert await parts.submit("clinic-b", "b0") == CreateOutcome.CREATED
    taken = [await parts.queue.read("w1", 10) for _ in range(4)]
    # B's one job is the very next one, then the turns alternate while both have jobs.
    assert [str(j.ref) for j in taken if j] == ["clinic-b/b0", "clinic-a/a1", "clinic-a/a2", "clinic-a/a3"]
    assert await parts.queue.depth("clinic-a") == 200 and await parts.queue.depth() == 201


async def test_three_clients_take_turns(parts: Parts) -> None:
    for client in ("a", "b", "c"):
        for i in range(3):
            await parts.submit(client, f"{client}{i}")
    order = [str((await parts.queue.read("w", 10)).ref) for _ in range(9)]  # type: ignore[union-attr]
    # One job of each client per turn; a client that joined last is served first.
    assert order == ["c/c0", "b/b0", "a/a0", "c/c1", "b/b1", "a/a1", "c/c2", "b/b2", "a/a2"]
    assert await parts.queue.read("w", 10) is None


async def test_each_client_has_its_own_share_and_all_share_the_total(parts: Parts) -> None:
    assert await parts.submit("a", "a0", share=2) == CreateOutcome.CREATED
    assert await parts.submit("a", "a1", share=2) == CreateOutcome.CREATED
    assert await parts.submit("a", "a2", share=2) == CreateOutcome.FULL_CLIENT
    assert await parts.submit("b", "b0", share=2) == CreateOutcome.CREATED  # A's full share is A's alone
    assert await parts.submit("c", "c0", share=10, total=3) == CreateOutcome.FULL  # 3 open in all
    # A finished job frees its place in the share.
    jobs = [await parts.queue.read("w", 10) for _ in range(3)]
    await parts.queue.ack(next(j for j in jobs if j and j.ref.client_id == "a"))
    assert await parts.submit("a", "a2", share=2) == CreateOutcome.CREATED


async def test_the_same_task_id_of_two_clients_is_two_tasks(parts: Parts) -> None:
    assert await parts.submit("a", "order-1") == CreateOutcome.CREATED
    assert await parts.submit("b", "order-1") == CreateOutcome.CREATED
    assert await parts.submit("a", "order-1") == CreateOutcome.EXISTS
    await parts.store.cancel(TaskRef("a", "order-1"))
    a = await parts.store.get(TaskRef("a", "order-1"))
    b = await parts.store.get(TaskRef("b", "order-1"))
    assert a is not None and b is not None
    assert (a.status, b.status) == (task_pb2.CANCELLED, task_pb2.QUEUED)


async def test_delete_cancels_a_queued_task_refuses_a_running_one_and_erases_a_final_one(
    parts: Parts,
) -> None:
    from dentalai.errors import DentalAIError

    await parts.submit("a", "t")
    ref = TaskRef("a", "t")
    await parts.store.mark_running(ref, 3)
    with pytest.raises(DentalAIError) as running:
        await parts.store.cancel(ref)
    assert running.value.code == 10010
    await parts.store.finish(ref, result=results_pb2.PanoResult())
    await parts.redis.hset(parts.keys.artifacts(ref), "overlay.png", b"png")
    task, erased = await parts.store.cancel(ref)
    assert erased and task.status == task_pb2.SUCCEEDED
    assert not await parts.redis.exists(parts.keys.task(ref), parts.keys.artifacts(ref))
    assert await parts.redis.zscore(parts.keys.callback_schedule, str(ref)) is None
    with pytest.raises(DentalAIError) as gone:
        await parts.store.cancel(ref)
    assert gone.value.code == 10009


async def test_a_dead_workers_job_is_taken_over_in_any_clients_stream(parts: Parts) -> None:
    await parts.submit("a", "a0")
    await parts.submit("b", "b0")
    held = [await parts.queue.read("dead-worker", 10) for _ in range(2)]
    assert {str(j.ref) for j in held if j} == {"a/a0", "b/b0"}
    await asyncio.sleep(0.05)
    stale = await parts.queue.claim_stale("live-worker", min_idle_s=0.01, count=5)
    assert {str(j.ref) for j in stale} == {"a/a0", "b/b0"}
    for client in ("a", "b"):
        pending = await parts.redis.xpending(parts.keys.queue(client), CONSUMER_GROUP)
        assert pending["consumers"] == [{"name": b"live-worker", "pending": 1}]


async def test_a_stream_that_lost_its_group_gets_it_back(parts: Parts) -> None:
    await parts.submit("a", "a0")
    await parts.redis.xgroup_destroy(parts.keys.queue("a"), CONSUMER_GROUP)
    job = await parts.queue.read("w", 10)
    assert job is not None and job.ref == TaskRef("a", "a0")


# ---- the worker's paths ----------------------------------------------------------------------


class Recording(Pipeline):
    """A pano pipeline that records its calls and can be held mid-task."""

    model_name = "recording"
    task_type = "pano"

    def __init__(self, hold_s: float = 0.0) -> None:
        self.engine = None  # type: ignore[assignment]
        self.calls: list[tuple[int, int]] = []
        self.hold_s = hold_s

    @property
    def model_info(self) -> results_pb2.ModelInfo:
        return results_pb2.ModelInfo(name="recording", version="0")

    def run(
        self, image: DecodedImage, options: task_pb2.AnalysisOptions, timer: StageTimer | None = None
    ) -> Message:
        import time

        self.calls.append(image.pixels.shape)
        time.sleep(self.hold_s)
        return results_pb2.PanoResult(image=results_pb2.PanoImage(width=1, height=1))


def worker_with(parts: Parts, pipeline: Recording) -> Worker:
    settings = parts.settings.with_overrides(artifacts={"enabled": False})
    return Worker(settings, parts.redis, LoadedPipelines(pipelines={"pano": pipeline}))


async def test_a_job_cancelled_while_queued_is_skipped_and_acknowledged(parts: Parts) -> None:
    pipeline = Recording()
    worker = worker_with(parts, pipeline)
    await parts.submit("a", "gone")
    task, erased = await parts.store.cancel(TaskRef("a", "gone"))
    assert task.status == task_pb2.CANCELLED and not erased
    job = await parts.queue.read(worker.worker_id, 10)
    assert job is not None
    await worker.handle(job)
    assert pipeline.calls == []  # never run
    stored = await parts.store.get(TaskRef("a", "gone"))
    assert stored is not None and stored.status == task_pb2.CANCELLED and stored.deliveries == 0
    assert await parts.queue.depth("a") == 0  # acknowledged and deleted
    assert await parts.redis.zcard(parts.keys.callback_schedule) == 0  # a cancelled task has no callback


async def test_a_job_released_on_a_forced_stop_is_queued_again_uncounted(parts: Parts) -> None:
    pipeline = Recording(hold_s=0.5)
    worker = worker_with(parts, pipeline)
    await parts.submit("a", "held")
    job = await parts.queue.read(worker.worker_id, 10)
    assert job is not None
    handling = asyncio.create_task(worker.handle(job))
    while not pipeline.calls:
        await asyncio.sleep(0.01)
    running = await parts.store.get(TaskRef("a", "held"))
    assert running is not None and running.status == task_pb2.RUNNING and running.deliveries == 1
    handling.cancel()  # what the second SIGTERM does
    with pytest.raises(asyncio.CancelledError):
        await handling
    back = await parts.store.get(TaskRef("a", "held"))
    assert back is not None and back.status == task_pb2.QUEUED and back.deliveries == 0
    assert not back.HasField("started_at")
    pending = await parts.redis.xpending(parts.keys.queue("a"), CONSUMER_GROUP)
    assert pending["pending"] == 0 and await parts.queue.depth("a") == 1  # a new entry, the old one gone
    # Another worker takes it at once (no visibility timeout to wait for) and finishes it.
    other = worker_with(parts, Recording())
    again = await parts.queue.read(other.worker_id, 10)
    assert again is not None and again.ref == TaskRef("a", "held") and again.entry_id != job.entry_id
    await other.handle(again)
    done = await parts.store.get(TaskRef("a", "held"))
    assert done is not None and done.status == task_pb2.SUCCEEDED and done.deliveries == 1
