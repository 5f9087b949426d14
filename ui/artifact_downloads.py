"""The worker's artifacts of a finished task, fetched for the UI's download list: the PDF report
and the DICOM files, named `<stem>.report.pdf`, `<stem>.report.dcm`, ... (the overlay PNG the page
shows is drawn from the same result by dentalai.overlay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dentalai.errors import DentalAIError
from ui.backend import Backend, ServiceUnreachable

OFFERED = ("report.pdf", "report.dcm", "overlay.dcm", "image.dcm")


def save_artifacts(
    backend: Backend, task: dict[str, Any], out_dir: Path, stem: str
) -> tuple[list[Path], str]:
    """Saved files, and a note when some could not be had (shown under the status, not an error)."""
    artifacts = task.get("artifacts") or {}
    ready = [n for n in OFFERED if n in (artifacts.get("ready") or [])]
    if not ready:
        error = (artifacts.get("error") or {}).get("message")
        return [], f"no report files: {error}" if error else ""
    saved: list[Path] = []
    for name in ready:
        try:
            data = backend.artifact(task["taskId"], name)
        except (DentalAIError, ServiceUnreachable) as err:
            return saved, f"{name} could not be fetched: {err}"
        path = out_dir / f"{stem}.{name}"
        path.write_bytes(data)
        saved.append(path)
    return saved, ""
