"""Redis failover under load, the short form of bench/failover_soak.py (about 30 s): a primary, two
replicas and three Sentinels as local processes, the real gRPC server, two echo workers, the
dispatcher and a receiver, configured with redis.sentinels and redis.wait_replicas 1. While 120
tasks are submitted, the primary is SIGKILLed, then a replica and a Sentinel.

Every task that got an answer is final with its callback delivered (none lost), no task was run
into two different callbacks (each duplicate, if any, carries the same webhook-id, so a receiver
drops it), the processes followed the failover without a restart, and nothing in Redis is
half-written. Figures of longer runs: docs/benchmarks.md ("Redis failover")."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import redis.asyncio as aioredis

from dentalai.config import ConfigError, load_config
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys, TaskRef
from grpc_server.store import CreateOutcome, TaskStore
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "failover_soak.py"

pytestmark = pytest.mark.slow


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("failover_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tasks_survive_primary_replica_and_sentinel_loss(tmp_path: Path) -> None:
    bench = load_bench()
    args = bench.parser().parse_args(
        ["--pipeline", "echo", "--tasks", "120", "--rate", "15", "--echo-sleep-s", "0.02",
         "--rounds", "primary", "replica+sentinel", "--wait-replicas", "1",
         "--settle-s", "2", "--time-limit", "60"]
    )  # fmt: skip
    report = bench.run(args, tmp_path, quiet=True)
    summary = json.dumps(report)  # the whole report in a failure's message
    assert report["accepted"] == report["submitted"] == 120, summary
    assert report["lost"] == 0, summary
    assert report["final"] == 120 and report["statuses"] == {"SUCCEEDED": 120}, summary
    assert report["tasks_under_two_webhook_ids"] == 0, summary
    assert report["tasks_in_redis"] == 120 and report["tasks_half_written"] == 0, summary
    # A primary was gone for a while and came back on its own (a promoted replica).
    assert 0.5 < report["no_primary_by_round_s"]["primary"] < 15, summary
    assert report["no_primary_by_round_s"]["replica+sentinel"] < 1.0, summary


# ---- the pieces, without a failover ---------------------------------------------------------------


async def test_unconfirmed_acceptance_is_10008_and_a_retry_finds_the_task(redis_server: RedisServer) -> None:
    """A Redis without replicas never confirms: the task is stored, the answer is 10008, and a
    resubmission (same taskId and hash) finds it, and is again unconfirmed; with wait_replicas 0
    the same resubmission is simply EXISTS."""
    r = aioredis.Redis.from_url(redis_server.url)
    keys = Keys("test:durable:")
    store = TaskStore(r, keys, 60)
    ref = TaskRef("dev", "durable-1")
    task = task_pb2.Task(task_id=ref.task_id, task_type="pano", status=task_pb2.QUEUED)

    async def create(wait: int) -> tuple[CreateOutcome, str]:
        args = (ref, task, b"img", "", "hash-1", 100, 100)
        return await store.create(*args, wait_replicas=wait, wait_timeout_ms=50)

    for _ in range(2):
        with pytest.raises(DentalAIError) as refused:
            await create(1)
        assert refused.value.code == ErrorCode.QUEUE_UNAVAILABLE and "same taskId" in refused.value.message
        assert await r.hget(keys.task(ref), "request_hash") == b"hash-1"
    assert await create(0) == (CreateOutcome.EXISTS, "hash-1")
    assert await r.xlen(keys.queue("dev")) == 1  # one task, one job, however often it was sent
    await r.aclose()


def test_redis_settings_take_sentinels_or_a_url() -> None:
    ok = load_config(environ={"DENTALAI_REDIS__SENTINELS": '["redis-0.redis-headless:26379", "[::1]:26380"]'})
    assert ok.redis.sentinels == ["redis-0.redis-headless:26379", "[::1]:26380"] and ok.redis_url == ""
    refused = [
        {"DENTALAI_REDIS__SENTINELS": '["no-port"]'},
        {"DENTALAI_REDIS__SENTINELS": '["a:26379"]', "DENTALAI_REDIS_URL": "redis://a:6379/0"},
        {"DENTALAI_REDIS__PASSWORD": "x" * 40},  # a Sentinel-mode password without sentinels
        {"DENTALAI_REDIS__SENTINELS": '["a:26379"]', "DENTALAI_REDIS__PASSWORD": "REPLACE-" + "x" * 40},
        {"DENTALAI_REDIS__WAIT_TIMEOUT_MS": "60000"},  # longer than any client's socket timeout
    ]
    for environ in refused:
        with pytest.raises(ConfigError):
            load_config(environ=environ)
