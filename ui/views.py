"""What the UI shows, computed from a task dict (proto3 JSON mapping); no Gradio here."""

from __future__ import annotations

from typing import Any

from dentalai.overlay import check_number_teeth, edentulous_text, result_dict
from dentalai.task_json import findings_status, model_label, tooth_designation

MEASUREMENT_COLUMNS = ["id", "name", "value", "unit", "norm", "interpretation"]
CLASS_COLUMNS = ["id", "name", "value", "unit", "class", "label"]
TOOTH_COLUMNS = ["number", "fdi", "score", "check", "areaPx", "bbox", "findings"]


def task_result(task: dict[str, Any]) -> dict[str, Any] | None:
    """The result `data` of a task, whichever way the service nests it."""
    for key in ("ceph", "pano", "result", "data"):
        if isinstance(task.get(key), dict) and task[key]:
            return result_dict(task[key])
    return None


def task_error(task: dict[str, Any]) -> tuple[int, str] | None:
    err = task.get("error") or {}
    code = int(err.get("code") or 0)
    return (code, str(err.get("message") or "")) if code else None


def status_markdown(task: dict[str, Any], backend: str) -> str:
    status = task.get("status", "?")
    line = f"**{status}** · task `{task.get('taskId', '?')}` · via {backend}"
    error = task_error(task)
    if error:
        line += f"\n\n**Error {error[0]}**: {error[1]}"
    model = model_label(task.get("model") or {})
    if model:
        line += f"\n\nmodel {model}"
    timing = task.get("timing") or {}
    if timing.get("totalMs"):
        line += f" · queued {timing.get('queuedMs', 0)} ms, processing {timing.get('processingMs', 0)} ms"
    return line


def error_markdown(code: int | None, message: str) -> str:
    return f"**Error {code}**: {message}" if code else f"**Error**: {message}"


def _num(value: Any) -> Any:
    return round(float(value), 2) if isinstance(value, int | float) else value


def measurement_rows(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """ceph: measurements with norm and interpretation; pano: one row per tooth."""
    if "teeth" in data:
        numbering = str(data.get("numbering", ""))
        rows = [
            [tooth_designation(t, numbering), t.get("fdi"), _num(t.get("score", 0)),
             "check number" if t.get("checkNumber") else "", _num(t.get("areaPx", 0)),
             ", ".join(str(_num(v)) for v in t.get("bbox") or []), ", ".join(t.get("findings") or [])]
            for t in data.get("teeth") or []
        ]  # fmt: skip
        return TOOTH_COLUMNS, rows
    rows = []
    for m in data.get("measurements") or []:
        norm = m.get("norm") or {}
        norm_text = f"{_num(norm.get('mean', 0))} ± {_num(norm.get('sd', 0))}" if norm else ""
        rows.append([m.get("id"), m.get("name"), _num(m.get("value", 0)), m.get("unit"), norm_text,
                     m.get("interpretation")])  # fmt: skip
    return MEASUREMENT_COLUMNS, rows


def finding_rows(data: dict[str, Any]) -> list[list[Any]]:
    """pano: per finding type, how many and on which teeth (in the result's numbering), "none found"
    for a type looked for without a finding, and why a type was not looked for."""
    by_type: dict[str, list[str]] = {}
    numbering = str(data.get("numbering", ""))
    teeth = {t.get("fdi"): t for t in data.get("teeth") or []}
    for f in data.get("findings") or []:
        # A primary tooth's Universal number is 0: name it by its tooth's letter.
        tooth = teeth.get(f.get("fdi"), f)
        where = tooth_designation(tooth, numbering) if f.get("fdi") else "no tooth"
        by_type.setdefault(str(f.get("type", "")), []).append(where)
    rows = [[f"findings: {kind}", f"{len(where)} on {', '.join(sorted(set(where)))}"]
            for kind, where in sorted(by_type.items())]
    rows += [[f"findings: {t.type}", t.text] for t in findings_status(data) if t.type not in by_type]
    return rows or [["findings", "none"]]


def class_rows(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """ceph: the eight classifications and the summary; pano: count, missing teeth, edentulous jaws and
    the teeth whose number is to be checked."""
    if "teeth" in data:
        summary = data.get("summary") or {}
        missing = ", ".join(str(n) for n in data.get("missingTeeth") or []) or "none"
        checks = check_number_teeth(data)
        return ["item", "value"], [
            ["numbering", data.get("numbering", "")],
            ["tooth count", summary.get("toothCount", len(data.get("teeth") or []))],
            ["missing teeth", missing],
            ["edentulous jaws", edentulous_text(data).removeprefix("edentulous: ") or "none"],
            ["check number", ", ".join(checks) if checks else "none"],
            *finding_rows(data),
        ]
    rows = [
        [
            c.get("id"),
            c.get("name"),
            _num(c.get("value", 0)),
            c.get("unit"),
            c.get("category"),
            c.get("label"),
        ]
        for c in data.get("classifications") or []
    ]
    summary = data.get("summary") or {}
    if summary:
        # The rule and each indicator's reading go with the verdict (docs/ceph_summary.md).
        for label, key, agree, rule in (
            ("skeletal class", "skeletalClass", "skeletalAgreement", "skeletalRule"),
            ("vertical pattern", "verticalPattern", "verticalAgreement", "verticalRule"),
        ):
            verdict = summary.get(key, "")
            if summary.get(agree):
                verdict = f"{verdict} ({summary[agree]} of 3 agree)"
            rows.append(["summary", label, "", "", "", verdict])
            if summary.get(rule):
                rows.append(["summary", f"{label}: rule", "", "", "", summary[rule]])
    return CLASS_COLUMNS, rows
