"""The UI offers the worker's report files as downloads (a backend double that serves bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the ui extra is not installed")

from dentalai.errors import DentalAIError, ErrorCode  # noqa: E402
from ui.artifact_downloads import save_artifacts  # noqa: E402


class Files:
    description = "double"

    def __init__(self, missing: str = "") -> None:
        self.missing = missing

    def artifact(self, task_id: str, name: str) -> bytes:
        if name == self.missing:
            raise DentalAIError(ErrorCode.ARTIFACT_NOT_AVAILABLE, f"{name} not available")
        return f"{task_id}/{name}".encode()


def test_ready_artifacts_are_saved_for_download(tmp_path: Path):
    task = {
        "taskId": "t1",
        "artifacts": {"ready": ["overlay.png", "report.pdf", "report.dcm", "overlay.dcm"]},
    }
    saved, note = save_artifacts(Files(), task, tmp_path, "case")
    assert [p.name for p in saved] == ["case.report.pdf", "case.report.dcm", "case.overlay.dcm"]
    assert saved[0].read_bytes() == b"t1/report.pdf" and note == ""


def test_missing_or_failed_artifacts_are_said_not_raised(tmp_path: Path):
    failed = {"taskId": "t2", "artifacts": {"ready": [], "error": {"code": 13001, "message": "boom"}}}
    assert save_artifacts(Files(), failed, tmp_path, "c") == ([], "no report files: boom")
    task = {"taskId": "t3", "artifacts": {"ready": ["report.pdf", "report.dcm"]}}
    saved, note = save_artifacts(Files(missing="report.dcm"), task, tmp_path, "c")
    assert [p.name for p in saved] == ["c.report.pdf"] and "report.dcm" in note
