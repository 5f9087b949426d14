"""Helpers of the DICOM node's tests: settings with a PACS client, the node as a real process, a
pynetdicom sender (SCU), and reads of what the node stored.

    settings = node_settings(redis_url, callers={"SENDER": "pacs"}, clients=[client_entry(...)])
    proc = procs.start(["dicom"], settings, wait_line="dicom node ready")
    with associate(settings, "SENDER") as assoc:  # an established association
        assoc.send_c_store(dataset)
    stored_task(settings, "pacs", uid)             # the Task proto, or None
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydicom
import redis
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from dentalai.config import Settings
from dentalai.v1 import task_pb2
from grpc_server.keys import Keys, TaskRef
from tests.conftest import api_key, client_entry, free_port, make_settings
from tests.dicom import films

PACS = "pacs"  # the client of the sender SENDER
NODE_AE = "DENTALAI"


def node_settings(redis_url: str, callers: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings of a node on a free port; `callers` maps AE titles to clients (default SENDER ->
    pacs, a client that keeps identifiers, as a PACS needs); `clients` replaces the clients."""
    callers = callers or {"SENDER": PACS}
    clients = overrides.pop("clients", None) or [client_entry(PACS, api_key(PACS), deidentify=False)]
    dicom = {
        "enabled": True, "port": free_port(),
        "callers": [{"ae_title": ae, "client": client} for ae, client in callers.items()],
        **overrides.pop("dicom", {}),
    }  # fmt: skip
    return make_settings(redis_url, auth={"clients": clients}, dicom=dicom, **overrides)


def dataset(data: bytes) -> Dataset:
    """The Dataset of a DICOM file, with its File Meta (the SCU sends it in that transfer syntax)."""
    return pydicom.dcmread(io.BytesIO(data))


@contextmanager
def associate(
    settings: Settings,
    calling_ae: str = "SENDER",
    contexts: list[tuple[str, list[str]]] | None = None,
    called_ae: str = NODE_AE,
    max_pdu: int = 0,
) -> Iterator[Association]:
    """An association of `calling_ae` with the node (not checked: `.is_established`), released
    at the end. `contexts`: (SOP class, transfer syntaxes) pairs; default DX for Presentation in
    Explicit VR LE, and Verification."""
    ae = AE(ae_title=calling_ae)
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for sop_class, syntaxes in contexts or [(films.DX_PRESENTATION, [films.EXPLICIT])]:
        ae.add_requested_context(sop_class, syntaxes)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", settings.dicom.port, ae_title=called_ae)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def send(settings: Settings, data: bytes, calling_ae: str = "SENDER") -> Dataset:
    """C-STORE one DICOM file in its own transfer syntax; the status Dataset (Status, ErrorComment)."""
    ds = dataset(data)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    with associate(settings, calling_ae, [(str(ds.SOPClassUID), [syntax])]) as assoc:
        assert assoc.is_established, "association not established"
        answer = assoc.send_c_store(ds)
    assert "Status" in answer, "no C-STORE answer"
    return answer


def store(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def stored_task(settings: Settings, client: str, task_id: str) -> task_pb2.Task | None:
    """The task as the node stored it (callback merged in), or None."""
    key = Keys(settings.key_prefix).task(TaskRef(client, task_id))
    raw, callback = store(settings).hmget(key, ["task", "callback"])
    if raw is None:
        return None
    task = task_pb2.Task.FromString(raw)
    if callback:
        task.callback.ParseFromString(callback)
    return task


def stored_image(settings: Settings, client: str, task_id: str) -> bytes | None:
    return store(settings).hget(Keys(settings.key_prefix).task(TaskRef(client, task_id)), "image")


def counts(settings: Settings) -> dict[str, int]:
    """{outcome: instances} the node counted ({p}stats:dicom)."""
    raw = store(settings).hgetall(Keys(settings.key_prefix).dicom_stats)
    return {k.decode(): int(v) for k, v in raw.items()}


def tasks_of(settings: Settings, client: str) -> list[str]:
    """taskIds of `client`'s stored tasks."""
    prefix = Keys(settings.key_prefix).task(TaskRef(client, "x"))[:-1]
    return sorted(k.decode()[len(prefix):] for k in store(settings).scan_iter(match=prefix + "*"))


def wait_count(settings: Settings, outcome: str, at_least: int, timeout: float = 10.0) -> dict[str, int]:
    """The counts once `outcome` reached `at_least` (the node counts after it answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = counts(settings)
        if seen.get(outcome, 0) >= at_least:
            return seen
        time.sleep(0.05)
    raise TimeoutError(f"{outcome} counted {counts(settings).get(outcome, 0)} < {at_least} times")


def wait_final(settings: Settings, client: str, task_id: str, timeout: float = 180.0) -> task_pb2.Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = stored_task(settings, client, task_id)
        if task is not None and task.status in (task_pb2.SUCCEEDED, task_pb2.FAILED, task_pb2.CANCELLED):
            return task
        time.sleep(0.2)
    raise TimeoutError(f"task {task_id} not final after {timeout}s: {stored_task(settings, client, task_id)}")
