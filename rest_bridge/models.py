"""Pydantic models at the edge: the POST body (unknown fields refused) and the answer envelopes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

# A JSON number: no strings, no booleans.
Number = Annotated[float, Field(strict=True)]


class AnalyzeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pixelSpacingMm: Number | None = Field(None, description="pixel spacing in mm, > 0")
    toothNumbering: Literal["FDI", "UNIVERSAL"] | None = Field(None, description="FDI when absent")
    artifacts: list[StrictStr] | None = Field(
        None, description='"png", "pdf", "dcm": the callback carries the routes of these artifacts'
    )
    findings: list[StrictStr] | None = Field(
        None,
        description='pano finding types ("caries", "periapical"); absent: the models\' default types',
    )
    deidentify: bool | None = Field(
        None,
        strict=True,
        description="patient identifiers out of the DICOM artifacts and the PDF; "
        "absent: the client's default",
    )
    exportTo: StrictStr | None = Field(
        None,
        description="name of a configured export destination the DICOM results (report.dcm, "
        "overlay.dcm) are sent to once the task has succeeded; absent: the client's default",
    )


class AnalyzeBody(BaseModel):
    """Body of POST /api/v1/analyze (CONTRACT.md section 1)."""

    model_config = ConfigDict(extra="forbid")

    taskType: StrictStr = Field(description='"pano" or "ceph"')
    imageUrl: StrictStr | None = Field(None, description="http(s) URL, at most 2048 chars")
    imageBase64: StrictStr | None = Field(
        None, description="standard base64 (a data-URL prefix is allowed), at most 20 MiB decoded"
    )
    callbackUrl: StrictStr = Field(description="http(s) URL the result is POSTed to")
    taskId: StrictStr | None = Field(
        None, description="client id [A-Za-z0-9._-]{1,64}; generated when absent"
    )
    metadata: dict[str, Any] | None = Field(
        None, description="echoed in the callback; at most 16 KiB as JSON"
    )
    options: AnalyzeOptions | None = None


class Envelope(BaseModel):
    """Every success answer."""

    code: int = Field(0, description="0 on success")
    message: str
    data: Any = None


class ErrorDetail(BaseModel):
    field: str
    reason: str


class ErrorEnvelope(BaseModel):
    """Every error answer; `code` is the contract's numeric code (10001...)."""

    code: int
    message: str
    details: list[ErrorDetail] = []
