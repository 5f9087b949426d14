"""SubmitAnalysis validation: the REST rules of CONTRACT.md section 1, on the proto request.

Field names in errors are the REST (camelCase) names so that the bridge can pass them on.
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import urlsplit

from google.protobuf.json_format import MessageToDict

from artifacts.kinds import OPTIONS as ARTIFACT_OPTIONS
from dentalai.config import ClientSettings, Settings
from dentalai.contract import FINDING_TYPES
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import results_pb2
from grpc_server import netguard
from grpc_server.export_policy import may_name
from pipelines.registry import TASK_TYPES

TASK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def invalid(field: str, reason: str) -> DentalAIError:
    return DentalAIError(ErrorCode.INVALID_PARAMETER, f"{field}: {reason}", [(field, reason)])


def validate_submission(
    request: pb.SubmitAnalysisRequest,
    settings: Settings,
    callback_required: bool = True,
    client: ClientSettings | None = None,
) -> None:
    """Raise DentalAIError (10001 with one field detail, or 10002) for the first rule broken.
    `callback_required` False admits an empty callbackUrl (the DICOM node's tasks have none).
    `client` is the caller, for the export destinations it may name (export_policy.may_name);
    without it any configured destination passes."""
    limits = settings.limits
    if not request.task_type:
        raise invalid("taskType", "required")
    if request.task_type not in TASK_TYPES:
        raise DentalAIError(
            ErrorCode.UNSUPPORTED_TASK_TYPE,
            f"unsupported taskType {request.task_type[:40]!r}; use one of {', '.join(TASK_TYPES)}",
            [("taskType", "unsupported")],
        )
    which = request.WhichOneof("image")
    if which is None:
        raise invalid("imageUrl", "exactly one of imageUrl or imageBase64 is required")
    if which == "image_url":
        check_url("imageUrl", request.image_url, settings)
    else:
        if not request.image_data:
            raise invalid("imageBase64", "empty image")
        if len(request.image_data) > limits.max_image_bytes:
            raise invalid("imageBase64", f"image larger than {limits.max_image_bytes} bytes")
    if request.callback_url:
        check_url("callbackUrl", request.callback_url, settings)
    elif callback_required:
        raise invalid("callbackUrl", "required")
    if request.task_id and not TASK_ID.fullmatch(request.task_id):
        raise invalid("taskId", "must match [A-Za-z0-9._-]{1,64}")
    if request.HasField("metadata"):
        try:
            size = len(json.dumps(MessageToDict(request.metadata), separators=(",", ":")).encode())
        except ValueError:  # NaN or Infinity: not JSON, cannot be echoed in a callback
            raise invalid("metadata", "numbers must be finite") from None
        if size > limits.max_metadata_bytes:
            raise invalid("metadata", f"larger than {limits.max_metadata_bytes} bytes as JSON")
    if request.HasField("options"):
        options = request.options
        if options.HasField("pixel_spacing_mm"):
            value = options.pixel_spacing_mm
            if not math.isfinite(value) or value <= 0:
                raise invalid("options.pixelSpacingMm", "must be a number > 0")
        if options.tooth_numbering not in results_pb2.ToothNumbering.values():
            raise invalid("options.toothNumbering", "must be FDI or UNIVERSAL")
        if not set(options.artifacts) <= set(ARTIFACT_OPTIONS):
            raise invalid("options.artifacts", f"each value must be one of {', '.join(ARTIFACT_OPTIONS)}")
        if not set(options.findings) <= set(FINDING_TYPES):
            raise invalid("options.findings", f"each value must be one of {', '.join(FINDING_TYPES)}")
        if options.export_to:
            known = settings.exports.destination(options.export_to) is not None
            if not known or (client is not None and not may_name(settings, client, options.export_to)):
                # One reason for both: another client's destinations are not this caller's business.
                raise invalid("options.exportTo", "not an export destination of this client")


def check_url(field: str, url: str, settings: Settings) -> None:
    """http(s), within max_url_length, with a host; a literal forbidden address is refused (SSRF)."""
    if len(url) > settings.limits.max_url_length:
        raise invalid(field, f"longer than {settings.limits.max_url_length} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise invalid(field, "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise invalid(field, "must be an http or https URL")
    if not host:
        raise invalid(field, "URL has no host")
    if any(c.isspace() for c in url):
        raise invalid(field, "URL contains whitespace")
    if not netguard.valid_host(host):
        raise invalid(field, "host is not a valid host name")
    if netguard.literal_forbidden(host, settings.ssrf):
        raise invalid(field, "host is a loopback, private, link-local or otherwise refused address")
