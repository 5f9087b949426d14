"""Every Redis key name in one place, all under the configurable prefix (default "dentalai:").

| key                               | type   | what                                                   |
|-----------------------------------|--------|--------------------------------------------------------|
| {p}task:{id}                      | hash   | one task (store.py fields), expires after result_ttl_s |
| {p}artifacts:{id}                 | hash   | file name -> bytes of a finished task's artifacts    |
|                                   |        | (artifact_store.py), same TTL as the task            |
| {p}jobs                           | stream | queued jobs, field `task_id`; consumer group `workers` |
| {p}jobs:dead                      | stream | jobs abandoned after max_deliveries (12005)            |
| {p}callbacks:schedule             | zset   | member task id, score = due unix time of its callback  |
| {p}workers:{id}                   | string | heartbeat: serialized dentalai.v1.WorkerInfo, TTL      |
| {p}stats:callback:{outcome}       | string | counter of callback attempts by outcome                |
| {p}stats:tasks                    | hash   | tasks by status: QUEUED/RUNNING now; final statuses    |
|                                   |        | are totals (expired tasks are not subtracted)          |
"""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    prefix: str = "dentalai:"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def artifacts(self, task_id: str) -> str:
        return f"{self.prefix}artifacts:{task_id}"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}jobs:dead"

    @property
    def callback_schedule(self) -> str:
        return f"{self.prefix}callbacks:schedule"

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

    @property
    def task_stats(self) -> str:
        return f"{self.prefix}stats:tasks"
