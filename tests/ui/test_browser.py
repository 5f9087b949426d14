"""Headless chromium drives the Gradio page: upload a generated image, wait, see overlay and tables.

`test_browser_page_flow` uses a scripted backend (the page's own mechanics: upload, streaming
status, overlay, tables, downloads); `test_browser_against_service` runs the real service.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ui_helpers import browser_skip_reason, drive, free_port, running_ui, synthetic_radiograph

from ui.app import UIConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
from sample_results import ceph_result  # noqa: E402

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or "")


class ScriptedBackend:
    """QUEUED, RUNNING, then a hand-made ceph result; or a contract error at submission."""

    description = "scripted backend"

    def __init__(self, error: tuple[int, str] | None = None):
        self.polls = 0
        self.error = error
        self.submitted = []

    def submit(self, task_type, image, options):
        from dentalai.errors import DentalAIError, ErrorCode

        self.submitted.append((task_type, len(image), options))
        if self.error:
            raise DentalAIError(ErrorCode(self.error[0]), self.error[1])
        return {"taskId": "t-ui", "status": "QUEUED"}

    def get(self, task_id):
        self.polls += 1
        if self.polls < 3:
            return {"taskId": task_id, "status": "RUNNING"}
        return {"taskId": task_id, "status": "SUCCEEDED", "ceph": ceph_result()}


def test_browser_page_flow(tmp_path):
    backend = ScriptedBackend()
    image = synthetic_radiograph(tmp_path / "generated_ceph.png")
    cfg = UIConfig(port=free_port(), poll_interval_s=0.1)
    with running_ui(cfg, backend) as url:
        shown = drive(url, image, "ceph", tmp_path / "page_flow.png")
    assert backend.submitted and backend.submitted[0][0] == "ceph"
    assert "SUCCEEDED" in shown["status"]
    assert shown["overlay_visible"]
    assert "SNA" in shown["measurements"] and "82.0 ± 3.5" in shown["measurements"]
    assert "Class II" in shown["classes"]
    assert "t-ui" in shown["raw"]
    assert shown["downloads"] >= 2
    assert (tmp_path / "page_flow.png").stat().st_size > 10_000


def test_browser_shows_submission_error_code(tmp_path):
    backend = ScriptedBackend(error=(10007, "queue full; retry later"))
    image = synthetic_radiograph(tmp_path / "generated.png", 64, 64)
    with running_ui(UIConfig(port=free_port()), backend) as url:
        shown = drive(url, image, "pano", tmp_path / "error.png")
    assert "Error 10007" in shown["status"] and "queue full" in shown["status"]
    assert not shown["overlay_visible"]
