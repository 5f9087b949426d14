"""Nothing accepted is lost and nothing half-written (CONTRACT.md section 8): the task store down
answers 0xA700 and the sender's retry after it is back is one task; the node killed in the middle
of an association (its C-STORE stored but never answered) and started again answers the sender's
retry from the stored task, and the worker analyses each instance once."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dentalai.v1 import task_pb2
from dicom_node import status
from grpc_server.keys import Keys
from tests.conftest import Processes, start_redis
from tests.dicom import films
from tests.dicom.node import (
    PACS,
    associate,
    counts,
    dataset,
    node_settings,
    send,
    store,
    stored_task,
    tasks_of,
    wait_final,
)

pytestmark = pytest.mark.slow


def instance(seed: int) -> Dataset:
    pixels = np.random.default_rng(seed).integers(0, 255, (600, 512), dtype=np.uint8)
    return films.instance(pixels, Modality="PX")


def queued_jobs(settings: object) -> int:
    return int(store(settings).xlen(Keys(settings.key_prefix).queue(PACS)))  # type: ignore[attr-defined]


def test_store_unreachable_answers_out_of_resources(tmp_path: Path, processes: Processes) -> None:
    redis = start_redis(tmp_path / "redis", appendonly=True)  # what it held survives its restart
    try:
        settings = node_settings(redis.url, dicom={"store_timeout_s": 3})
        processes.start(["dicom"], settings, wait_line="dicom node ready")
        first, second = instance(1), instance(2)
        assert send(settings, films.encode(first)).Status == status.SUCCESS
        redis.stop()
        started = time.monotonic()
        answer = send(settings, films.encode(second))
        assert answer.Status == status.OUT_OF_RESOURCES, answer
        assert time.monotonic() - started < 10  # within store_timeout_s and the client's retries
        redis.start()
        assert tasks_of(settings, PACS) == [first.SOPInstanceUID] and queued_jobs(settings) == 1
        # the sender's retry once the store is back: a task, queued once
        assert send(settings, films.encode(second)).Status == status.SUCCESS
        assert sorted(tasks_of(settings, PACS)) == sorted([first.SOPInstanceUID, second.SOPInstanceUID])
        assert queued_jobs(settings) == 2
    finally:
        redis.stop()


def test_node_killed_mid_association_then_the_retry_is_analysed_once(
    tmp_path: Path, processes: Processes
) -> None:
    redis = start_redis(tmp_path / "redis")
    try:
        settings = node_settings(redis.url, artifacts={"enabled": False})
        node = processes.start(["dicom"], settings, wait_line="dicom node ready")
        sent, lost = instance(1), instance(2)
        answers: list[Dataset] = []
        with associate(settings) as assoc:
            assert assoc.send_c_store(dataset(films.encode(sent))).Status == status.SUCCESS
            # The store stalls with the second create sent to it; the node dies before answering.
            assert redis.proc is not None
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                sender = threading.Thread(
                    target=lambda: answers.append(assoc.send_c_store(dataset(films.encode(lost))))
                )
                sender.start()
                time.sleep(1.0)
                node.send_signal(signal.SIGKILL)
                node.wait(timeout=10)
                sender.join(timeout=30)
            finally:
                redis.proc.send_signal(signal.SIGCONT)
        assert answers and "Status" not in answers[0]  # the sender never had an answer...
        time.sleep(0.5)
        assert stored_task(settings, PACS, lost.SOPInstanceUID) is not None  # ...but it was stored
        # The node is back; the sender retries its whole batch.
        processes.start(["dicom"], settings, wait_line="dicom node ready")
        for ds in (sent, lost):
            assert send(settings, films.encode(ds)).Status == status.SUCCESS
        assert counts(settings).get("resent", 0) >= 1
        assert queued_jobs(settings) == 2 and len(tasks_of(settings, PACS)) == 2
        worker = "tests.reports.sample_worker"
        processes.start([], settings, module=worker, wait_line="worker ready", timeout=60)
        for ds in (sent, lost):
            task = wait_final(settings, PACS, ds.SOPInstanceUID, timeout=60)
            assert task.status == task_pb2.SUCCEEDED and task.deliveries == 1, task
    finally:
        if redis.proc is not None:
            redis.proc.send_signal(signal.SIGCONT)
        redis.stop()
