"""The artifacts a finished task can have: file name, media type, the `options.artifacts` value
that asks for it in the callback, and its REST route. The one place these names are written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dentalai.v1 import task_pb2


@dataclass(frozen=True)
class Kind:
    name: str  # file name in the route, also the Redis hash field
    media_type: str
    option: str  # value of options.artifacts that puts its route in the callback


OVERLAY_PNG = Kind("overlay.png", "image/png", "png")
REPORT_PDF = Kind("report.pdf", "application/pdf", "pdf")
REPORT_DCM = Kind("report.dcm", "application/dicom", "dcm")  # DICOM SR (TID 1500)
OVERLAY_DCM = Kind("overlay.dcm", "application/dicom", "dcm")  # Secondary Capture of the overlay
# Secondary Capture of a non-DICOM input: the image the SR's coordinates refer to.
IMAGE_DCM = Kind("image.dcm", "application/dicom", "dcm")

KINDS: dict[str, Kind] = {k.name: k for k in (OVERLAY_PNG, REPORT_PDF, REPORT_DCM, OVERLAY_DCM, IMAGE_DCM)}
OPTIONS = ("png", "pdf", "dcm")
# What an export destination gets of a succeeded task (grpc_server/exports.py): the results. The
# SR references the source image, which a DICOM input's PACS already holds.
EXPORTED = (REPORT_DCM.name, OVERLAY_DCM.name)


def route(task_id: str, name: str) -> str:
    """The REST path of an artifact, relative to the API's base URL."""
    return f"/api/v1/tasks/{task_id}/{name}"


def routes_for(task_id: str, ready: list[str], options: list[str]) -> dict[str, str]:
    """Name -> route of the ready artifacts whose option was asked for."""
    wanted = set(options)
    return {n: route(task_id, n) for n in ready if n in KINDS and KINDS[n].option in wanted}


def callback_artifacts(task: task_pb2.Task) -> dict[str, Any]:
    """The callback's `artifacts` field (name -> route) when options.artifacts asked for any;
    nothing otherwise, so callbacks without the option keep the contract's fields."""
    if not task.options.artifacts or task.status != task_pb2.SUCCEEDED:
        return {}
    return {"artifacts": routes_for(task.task_id, list(task.artifacts.ready), list(task.options.artifacts))}
