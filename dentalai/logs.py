"""JSON-lines logging with the current taskId attached.

`setup_logging(level)` once per process; `task_context(task_id, client_id)` around a task's work
puts "taskId" and "clientId" on every record logged inside it (contextvars, so asyncio tasks keep their own).
Never log image bytes, base64 or metadata values: only ids, codes, sizes and timings.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_task_id: ContextVar[str | None] = ContextVar("dentalai_task_id", default=None)
_client_id: ContextVar[str | None] = ContextVar("dentalai_client_id", default=None)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str = "") -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.process_name:
            line["process"] = self.process_name
        task_id = getattr(record, "taskId", None) or _task_id.get()
        if task_id:
            line["taskId"] = task_id
        client_id = getattr(record, "clientId", None) or _client_id.get()
        if client_id:
            line["clientId"] = client_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str = "INFO", process_name: str = "") -> None:
    """JSON lines on stderr for the whole process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def task_context(task_id: str, client_id: str | None = None) -> Iterator[None]:
    """Every log record inside carries taskId (and clientId, the task's owner, when given)."""
    token = _task_id.set(task_id)
    client_token = _client_id.set(client_id) if client_id is not None else None
    try:
        yield
    finally:
        _task_id.reset(token)
        if client_token is not None:
            _client_id.reset(client_token)
