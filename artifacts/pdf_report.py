"""The printable report: A4, two pages, drawn with reportlab in DejaVu Sans (Debian's
fonts-dejavu-core, installed by scripts/setup.sh; it covers accents and Cyrillic in case names).

Page 1: task, case (the caller's metadata fields that its client's `pdf_metadata_keys` allow),
date, model, pixel spacing, the overlay, the machine-made notice. Page 2: the tables (ceph:
landmarks, measurements, classes, summary; pano: tooth chart 18-48, with 55-85 when primary teeth
are present, and findings).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from dentalai.overlay import check_number_teeth, edentulous_text
from dentalai.task_json import findings_status, model_label, tooth_designation

# Binary streams: ASCII85 (reportlab's default, for 7-bit mail) is encoded in pure Python here and
# cost 80 % of the report's time for the embedded JPEG; the PDF is served as application/pdf.
rl_config.useA85 = 0
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
NOTICE = (
    "This analysis was made by a machine learning model. It is not a diagnosis and must be reviewed "
    "by a clinician before any clinical use."
)
PERMANENT_ROWS = (
    [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28],
    [48, 47, 46, 45, 44, 43, 42, 41, 31, 32, 33, 34, 35, 36, 37, 38],
)
PRIMARY_ROWS = ([55, 54, 53, 52, 51, 61, 62, 63, 64, 65], [85, 84, 83, 82, 81, 71, 72, 73, 74, 75])
MAX_CASE_FIELDS = 8


def _fonts() -> tuple[str, str]:
    """Regular and bold font names; DejaVu when installed, else the PDF core Helvetica."""
    if "DejaVuSans" in pdfmetrics.getRegisteredFontNames():
        return "DejaVuSans", "DejaVuSans-Bold"
    for directory in FONT_DIRS:
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
            return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def case_fields(metadata: Mapping[str, Any], allowed: Collection[str]) -> list[tuple[str, str]]:
    """The caller's scalar metadata fields whose keys are `allowed` (the client's allow-list: a
    field may name the patient), in the metadata's order."""
    scalar = str | int | float | bool
    fields = [(str(k), str(v)) for k, v in metadata.items() if k in allowed and isinstance(v, scalar)]
    return [(k[:40], v[:80]) for k, v in fields[:MAX_CASE_FIELDS]]


def build_pdf(
    kind: str,
    data: Mapping[str, Any],
    overlay_jpeg: bytes,
    overlay_size: tuple[int, int],
    task_id: str,
    metadata: Mapping[str, Any],
    model: Mapping[str, Any],
    finished_at: datetime | None = None,
    metadata_keys: Collection[str] = (),
) -> bytes:
    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=11.5)
    title = ParagraphStyle("title", fontName=bold, fontSize=15, leading=19, spaceAfter=4)
    heading = ParagraphStyle("heading", fontName=bold, fontSize=11, leading=14, spaceBefore=6, spaceAfter=3)
    notice = ParagraphStyle("notice", parent=body, fontName=bold, textColor=colors.HexColor("#9a1b1b"))
    when = (finished_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    image = data.get("image") or {}
    spacing = image.get("pixelSpacingMm")
    facts = [
        ("Task", task_id),
        *case_fields(metadata, metadata_keys),
        ("Date", when),
        ("Model", model_label(model) or "unknown"),
        ("Image", f"{image.get('width', '?')} x {image.get('height', '?')} px"),
    ]
    if kind == "ceph":
        facts.append(
            (
                "Pixel spacing",
                f"{spacing:g} mm ({image.get('spacingSource') or 'unknown'})" if spacing else "unknown",
            )
        )
    else:
        facts.append(("Pixel spacing", "not used (pixel measures)"))
    heading_text = "Cephalometric analysis" if kind == "ceph" else "Panoramic dental analysis"
    story: list[Any] = [Paragraph(f"dentalai — {heading_text}", title)]
    story.append(
        _table(
            [[Paragraph(f"<b>{_esc(k)}</b>", body), Paragraph(_esc(v), body)] for k, v in facts],
            [35 * mm, 140 * mm],
            regular,
            header=False,
        )
    )
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(NOTICE, notice))
    story.append(Spacer(1, 3 * mm))
    w, h = overlay_size
    box_w, box_h = 180 * mm, 175 * mm  # what is left of the first page
    scale = min(box_w / w, box_h / h)
    # From a file, not from bytes: reportlab names an in-memory image by decoding it and hashing its
    # pixels (about 20 ms for a 1600-px overlay), a file by its path; either way the JPEG is
    # embedded as it is.
    jpeg_file = tempfile.NamedTemporaryFile(suffix=".jpg")  # noqa: SIM115 (closed after build)
    jpeg_file.write(overlay_jpeg)
    jpeg_file.flush()
    story.append(Image(jpeg_file.name, width=w * scale, height=h * scale))
    story.append(PageBreak())
    if kind == "ceph":
        story += _ceph_tables(data, body, heading, regular)
    else:
        story += _pano_tables(data, body, heading, regular)
    story.append(Spacer(1, 4 * mm))
    story.append(Paragraph(NOTICE, notice))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"dentalai report {task_id}",
        author="dentalai",
        subject=heading_text,
    )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.setFont(regular, 7)
        canvas.drawString(15 * mm, 7 * mm, f"dentalai report · task {task_id} · page {doc.page}")

    with jpeg_file:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(
    rows: list[list[Any]], widths: list[float], font: str, header: bool = True, size: float = 8
) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), size),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e9f0")))
    table.setStyle(TableStyle(style))
    return table


def _unit_suffix(unit: str) -> str:
    """What follows a value in the tables: "°" for deg, " mm" for mm, nothing for a ratio."""
    return {"deg": "°", "percent": " %", "ratio": ""}.get(unit, f" {unit}")


def _ceph_tables(data: Mapping[str, Any], body: ParagraphStyle, heading: ParagraphStyle, font: str) -> list:
    story: list[Any] = [Paragraph("Landmarks", heading)]
    rows = [
        [
            lm.get("id", ""),
            lm.get("name", ""),
            f"{lm.get('x', 0):.1f}",
            f"{lm.get('y', 0):.1f}",
            f"{lm.get('confidence', 0):.2f}",
        ]
        for lm in data.get("landmarks") or []
    ]
    half = (len(rows) + 1) // 2  # two tables side by side keep the tables on one page
    head = ["id", "landmark", "x (px)", "y (px)", "conf."]
    widths = [14 * mm, 33 * mm, 14 * mm, 14 * mm, 12 * mm]
    sides = [_table([head, *part], widths, font, size=7) for part in (rows[:half], rows[half:])]
    pair = Table([sides], colWidths=[90 * mm, 90 * mm])
    pair.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    story.append(pair)
    story.append(Paragraph("Measurements", heading))
    rows = [["measurement", "value", "norm (mean ± sd)", "interpretation"]]
    for m in data.get("measurements") or []:
        unit = _unit_suffix(m.get("unit", ""))
        norm = m.get("norm") or {}
        rows.append(
            [
                m.get("name") or m.get("id", ""),
                f"{m.get('value', 0):.1f}{unit}",
                f"{norm.get('mean', 0):.1f} ± {norm.get('sd', 0):.1f}",
                m.get("interpretation", ""),
            ]
        )
    story.append(_table(rows, [58 * mm, 17 * mm, 27 * mm, 78 * mm], font, size=7))
    story.append(Paragraph("Classes (ISBI 2015)", heading))
    rows = [["class", "value", "result"]]
    for c in data.get("classifications") or []:
        unit = _unit_suffix(c.get("unit", ""))
        rows.append([c.get("name") or c.get("id", ""), f"{c.get('value', 0):.1f}{unit}", c.get("label", "")])
    story.append(_table(rows, [80 * mm, 30 * mm, 70 * mm], font, size=7))
    summary = data.get("summary") or {}
    story.append(
        Paragraph(
            f"<b>Summary:</b> skeletal {_esc(summary.get('skeletalClass') or 'unknown')}, "
            f"{_esc(summary.get('verticalPattern') or 'vertical pattern unknown')}",
            body,
        )
    )
    return story


def _pano_tables(data: Mapping[str, Any], body: ParagraphStyle, heading: ParagraphStyle, font: str) -> list:
    teeth = {int(t.get("fdi", 0)): t for t in data.get("teeth") or []}
    findings = data.get("findings") or []
    by_tooth: dict[int, list[str]] = {}
    for f in findings:
        by_tooth.setdefault(int(f.get("fdi") or 0), []).append(str(f.get("type", "")))
    numbering = str(data.get("numbering", ""))
    universal = numbering == "UNIVERSAL"
    story: list[Any] = [Paragraph("Tooth chart (FDI; patient's right on the left)", heading)]
    rows_sets = [PERMANENT_ROWS]
    if any(f > 50 for f in teeth) or any(f > 50 for f in by_tooth):
        rows_sets.append(PRIMARY_ROWS)
    missing_style: list[tuple] = []
    for rows in rows_sets:
        grid: list[list[str]] = []
        for row in rows:
            grid.append([str(f) for f in row])
            cells = []
            for f in row:
                if f in teeth:
                    text = f"{teeth[f].get('score', 0):.2f}"
                    if universal:
                        text = f"#{tooth_designation(teeth[f], 'UNIVERSAL')}\n{text}"
                    if teeth[f].get("checkNumber"):
                        text += "\ncheck no."
                else:
                    text = "missing"
                if by_tooth.get(f):
                    text += "\n" + "\n".join(sorted(set(by_tooth[f])))
                cells.append(text)
            grid.append(cells)
        width = 180 * mm / len(rows[0])
        table = _table(grid, [width] * len(rows[0]), font, header=False, size=6.5)
        style = [("ALIGN", (0, 0), (-1, -1), "CENTER")]
        for r in (0, 2):
            style.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#e4e9f0")))
        for r, row in ((1, rows[0]), (3, rows[1])):
            for c, f in enumerate(row):
                if f not in teeth:
                    style.append(("TEXTCOLOR", (c, r), (c, r), colors.HexColor("#9a1b1b")))
                elif teeth[f].get("checkNumber"):
                    style.append(("BACKGROUND", (c, r), (c, r), colors.HexColor("#fff3b0")))
                if by_tooth.get(f):
                    style.append(("BACKGROUND", (c, r), (c, r), colors.HexColor("#fbe3f5")))
        table.setStyle(TableStyle(style + missing_style))
        story += [table, Spacer(1, 3 * mm)]
    missing = data.get("missingTeeth") or []
    story.append(
        Paragraph(
            f"<b>Teeth found:</b> {len(teeth)}; <b>missing "
            f"({'Universal' if universal else 'FDI'}):</b> "
            f"{', '.join(str(n) for n in missing) or 'none'}",
            body,
        )
    )
    edentulous = edentulous_text(data)
    if edentulous:
        story.append(Paragraph(f"<b>Edentulous:</b> {_esc(edentulous.removeprefix('edentulous: '))}", body))
    checks = check_number_teeth(data)
    if checks:
        story.append(Paragraph(
            f"<b>Check number:</b> {_esc(', '.join(checks))} (the tooth's number is uncertain: its score, "
            "the "
            "probability that it is a tooth with this number, is low)", body))
    story.append(Paragraph(
        "Scores are calibrated probabilities (validation films): for a tooth, that it is a tooth with this "
        "number; for a finding, that it is a true lesion (models' cards).", body))
    story.append(Paragraph("Findings", heading))
    if findings:
        rows = [["type", "tooth (Universal, FDI)" if universal else "tooth (FDI)", "score", "area"]]
        for f in findings:
            area = f"{f['areaMm2']:.1f} mm²" if f.get("areaMm2") else f"{f.get('areaPx', 0):.0f} px"
            fdi = int(f.get("fdi") or 0)
            tooth = str(fdi or "-")
            if universal and fdi:  # a primary tooth's Universal designation is its letter
                tooth = f"#{tooth_designation(teeth.get(fdi, f), numbering)} ({fdi})"
            rows.append([str(f.get("type", "")), tooth, f"{f.get('score', 0):.2f}", area])
        story.append(_table(rows, [60 * mm, 30 * mm, 30 * mm, 40 * mm], font))
    statuses = findings_status(data)
    if not findings and not statuses:  # a result from before findingsAssessed
        story.append(Paragraph("No findings reported by this model.", body))
    for status in statuses:
        story.append(Paragraph(f"<b>{_esc(status.type)}:</b> {_esc(status.text)}", body))
    story.append(Paragraph("Teeth", heading))
    rows = [["FDI", "number", "score", "area (px)", "box x, y, w, h (px)", ""]]
    for f in sorted(teeth):
        t = teeth[f]
        box = ", ".join(f"{v:.0f}" for v in t.get("bbox") or [])
        rows.append(
            [str(f), tooth_designation(t, numbering), f"{t.get('score', 0):.2f}", f"{t.get('areaPx', 0):.0f}",
             box, "check number" if t.get("checkNumber") else ""]  # fmt: skip
        )
    story.append(_table(rows, [20 * mm, 20 * mm, 20 * mm, 30 * mm, 60 * mm, 25 * mm], font, size=6.5))
    return story
