"""Every Redis key name in one place, all under the configurable prefix (default "dentalai:").

A task is named by its TaskRef, "{client}/{taskId}": a client's taskId is its own, and a key built
from another client's id names another task (or none), so ownership needs no check of its own.

| key                               | type   | what                                                   |
|-----------------------------------|--------|--------------------------------------------------------|
| {p}task:{ref}                     | hash   | one task (store.py fields), expires after result_ttl_s |
| {p}artifacts:{ref}                | hash   | file name -> bytes of a finished task's artifacts    |
|                                   |        | (artifact_store.py), same TTL as the task            |
| {p}queue:{client}                 | stream | the client's queued jobs, field `task` = ref;          |
|                                   |        | consumer group `workers` (queue.py)                    |
| {p}queue-rotation                 | list   | clients with a queue stream, in round-robin order      |
| {p}queue-clients                  | set    | the same clients, to add each to the rotation once     |
| {p}queue-wake                     | list   | a token per new job: idle workers BLPOP it             |
| {p}jobs:dead                      | stream | jobs abandoned after max_deliveries (12005)            |
| {p}callbacks:schedule             | zset   | member ref, score = due unix time of its callback      |
| {p}exports:schedule               | zset   | member ref, score = due unix time of its export        |
|                                   |        | (exports.py: DICOM results to a destination)           |
| {p}workers:{id}                   | string | heartbeat: serialized dentalai.v1.WorkerInfo, TTL      |
| {p}stats:callback:{outcome}       | string | counter of callback attempts by outcome                |
| {p}stats:export:{outcome}         | string | counter of export attempts by outcome                  |
| {p}stats:tasks                    | hash   | tasks by status: QUEUED/RUNNING now; final statuses    |
|                                   |        | are totals (expired tasks are not subtracted)          |
| {p}stats:dicom                    | hash   | instances the DICOM node received, by outcome          |
|                                   |        | (dicom_node/intake.py: accepted, unrouted, ...)        |
"""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"


@dataclass(frozen=True)
class TaskRef:
    """A task's full name: the client that owns it and the client's taskId. Both alphabets
    ([A-Za-z0-9._-]) exclude "/", so the text form parses back unambiguously."""

    client_id: str
    task_id: str

    def __str__(self) -> str:
        return f"{self.client_id}/{self.task_id}"

    @classmethod
    def parse(cls, text: str | bytes) -> TaskRef:
        raw = text.decode() if isinstance(text, bytes) else text
        client_id, sep, task_id = raw.partition("/")
        if not sep or not client_id or not task_id:
            raise ValueError(f"not a task reference: {raw[:80]!r}")
        return cls(client_id, task_id)


@dataclass(frozen=True)
class Keys:
    prefix: str = "dentalai:"

    def task(self, ref: TaskRef) -> str:
        return f"{self.prefix}task:{ref}"

    def artifacts(self, ref: TaskRef) -> str:
        return f"{self.prefix}artifacts:{ref}"

    def queue(self, client_id: str) -> str:
        return f"{self.prefix}queue:{client_id}"

    @property
    def queue_prefix(self) -> str:
        """Stream key of a client = queue_prefix + client id (the queue scripts build it)."""
        return self.queue("")

    @property
    def queue_rotation(self) -> str:
        return f"{self.prefix}queue-rotation"

    @property
    def queue_clients(self) -> str:
        return f"{self.prefix}queue-clients"

    @property
    def queue_wake(self) -> str:
        return f"{self.prefix}queue-wake"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}jobs:dead"

    @property
    def callback_schedule(self) -> str:
        return f"{self.prefix}callbacks:schedule"

    @property
    def export_schedule(self) -> str:
        return f"{self.prefix}exports:schedule"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}workers:{worker_id}"

    @property
    def worker_pattern(self) -> str:
        return f"{self.prefix}workers:*"

    def callback_stat(self, outcome: str) -> str:
        return f"{self.prefix}stats:callback:{outcome}"

    @property
    def callback_stat_pattern(self) -> str:
        return f"{self.prefix}stats:callback:*"

    def export_stat(self, outcome: str) -> str:
        return f"{self.prefix}stats:export:{outcome}"

    @property
    def task_stats(self) -> str:
        return f"{self.prefix}stats:tasks"

    @property
    def dicom_stats(self) -> str:
        return f"{self.prefix}stats:dicom"
