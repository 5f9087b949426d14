"""Celery side of bench/soak.py's queue comparison: one no-op task on the same Redis.

The broker URL comes from SOAK_CELERY_BROKER; the last task of a run sets SOAK_CELERY_DONE_KEY so
the bench knows the queue is drained (tasks are consumed in order by one solo worker)."""

from __future__ import annotations

import os

import redis
from celery import Celery

app = Celery("soak", broker=os.environ.get("SOAK_CELERY_BROKER", "redis://127.0.0.1:6379/1"))
app.conf.update(
    task_ignore_result=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True
)


@app.task(name="soak.noop")
def noop(last: bool = False) -> None:
    if last:
        redis.Redis.from_url(os.environ["SOAK_CELERY_BROKER"]).set(os.environ["SOAK_CELERY_DONE_KEY"], "1")
