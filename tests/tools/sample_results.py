"""Hand-made results and annotations shared by the tool and UI tests."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from dentalai.v1 import results_pb2

CEPH_IDS = ["S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go",
            "LIT", "UIT", "UL", "LL", "Sn", "SoftPog", "PNS", "ANS", "Ar"]  # fmt: skip
# Plausible positions on a 640 x 800 lateral ceph, facing right.
CEPH_POINTS = {
    "S": (250, 300), "N": (480, 280), "Or": (420, 360), "Po": (170, 380), "A": (470, 470),
    "B": (450, 600), "Pog": (455, 660), "Me": (430, 700), "Gn": (450, 690), "Go": (250, 620),
    "LIT": (480, 530), "UIT": (485, 525), "UL": (520, 500), "LL": (515, 570), "Sn": (515, 440),
    "SoftPog": (490, 690), "PNS": (300, 450), "ANS": (490, 440), "Ar": (200, 470),
}  # fmt: skip


def ceph_result(shift: float = 0.0) -> dict[str, Any]:
    """A ceph result dict in the proto JSON mapping; `shift` moves every landmark right."""
    return {
        "image": {"width": 640, "height": 800, "pixelSpacingMm": 0.1, "spacingSource": "request"},
        "landmarks": [
            {"id": k, "name": k, "x": CEPH_POINTS[k][0] + shift, "y": CEPH_POINTS[k][1], "confidence": 0.9}
            for k in CEPH_IDS
        ],
        "measurements": [
            {
                "id": "SNA",
                "name": "SNA angle",
                "value": 82.0,
                "unit": "deg",
                "norm": {"mean": 82.0, "sd": 3.5},
                "interpretation": "normal",
            },
            {
                "id": "ANB",
                "name": "ANB angle",
                "value": 5.1,
                "unit": "deg",
                "norm": {"mean": 2.0, "sd": 2.0},
                "interpretation": "increased",
            },
        ],  # fmt: skip
        "classifications": [
            {"id": "ANB", "name": "ANB", "value": 5.1, "unit": "deg", "category": 2, "label": "Class II"}
        ],
        "summary": {"skeletalClass": "Class II", "verticalPattern": "normodivergent"},
    }


def tooth(fdi: int, x: float, y: float, w: float = 30, h: float = 80) -> dict[str, Any]:
    return {
        "fdi": fdi,
        "number": fdi,
        "score": 0.95,
        "bbox": [x, y, w, h],
        "polygon": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]],
        "areaPx": w * h,
    }


def pano_result() -> dict[str, Any]:
    """Four teeth, one per quadrant, on a 512 x 512 pano."""
    return {
        "image": {"width": 512, "height": 512},
        "numbering": "FDI",
        "teeth": [tooth(11, 220, 150), tooth(21, 270, 150), tooth(31, 270, 270), tooth(41, 220, 270)],
        "missingTeeth": [18, 28],
        "summary": {"toothCount": 4},
    }


def as_message(data: dict[str, Any]) -> results_pb2.CephResult | results_pb2.PanoResult:
    cls = results_pb2.CephResult if "landmarks" in data else results_pb2.PanoResult
    return json_format.ParseDict(data, cls())
