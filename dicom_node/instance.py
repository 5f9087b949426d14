"""The checks of a received C-STORE data set, before anything is stored, each with its status.

The data set arrives as the sender encoded it (pynetdicom's `encoded_dataset`, with File Meta
Information): it is kept as it is (the worker decodes it, with bounds) and only read here up to
its Pixel Data, with the decoder's own bounds (grpc_server.decode.dicom_header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dentalai.errors import DentalAIError
from dicom_node import status
from grpc_server.decode import dicom_header

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class Refused(Exception):
    """An instance refused with `status`; `comment` says why without any tag's value."""

    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


@dataclass(frozen=True)
class Instance:
    data: bytes  # the DICOM file as received (preamble, File Meta Information, data set)
    sop_class_uid: str
    sop_instance_uid: str
    tags: Any  # pydicom Dataset without Pixel Data: what routing reads


def read_instance(data: bytes, sop_class_uid: str, sop_instance_uid: str, max_bytes: int) -> Instance:
    """The instance of a C-STORE whose command names `sop_class_uid` and `sop_instance_uid`;
    raises Refused when it is larger than `max_bytes`, unreadable, or not an image of that class
    and instance."""
    if len(data) > max_bytes:
        raise Refused(status.TOO_LARGE, f"instance larger than {max_bytes} bytes (limits.max_image_bytes)")
    try:
        tags, has_pixels = dicom_header(data)
    except DentalAIError as exc:
        raise Refused(status.CANNOT_UNDERSTAND, exc.message) from None
    if "SOPClassUID" not in tags and "SOPInstanceUID" not in tags:  # pydicom read nothing sensible
        raise Refused(status.CANNOT_UNDERSTAND, "data set could not be read (no SOP Class or Instance UID)")
    uid = str(tags.get("SOPInstanceUID") or "").strip()
    if not _UID.fullmatch(uid) or len(uid) > 64 or uid != sop_instance_uid.strip():
        raise Refused(status.BAD_INSTANCE_UID, "SOP Instance UID absent, invalid or not the command's")
    if str(tags.get("SOPClassUID") or "").strip() != sop_class_uid.strip():
        raise Refused(status.DATASET_MISMATCH, "SOP Class UID of the data set is not the command's")
    if not has_pixels:
        raise Refused(status.DATASET_MISMATCH, "data set has no Pixel Data")
    return Instance(data, sop_class_uid.strip(), uid, tags)
