"""One export attempt: the stored DICOM files of a task to a destination, by C-STORE (pynetdicom)
or STOW-RS (httpx through the SSRF guard). Each returns a SendResult classified by export_policy;
neither raises for anything the network or the destination does.

The files are sent as stored: their SOP Instance UIDs are fixed in the bytes, so a second delivery
of the same result (at least once) is the same instances again, which a PACS files once.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import uuid
from dataclasses import dataclass

import httpx
import pydicom
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dentalai.config import ExportDestination
from grpc_server.callbacks import Outcome, classify, parse_retry_after
from grpc_server.export_policy import classify_association, classify_cstore, failed_instances
from grpc_server.netguard import AddressRefused

# pynetdicom logs every association step at INFO and each refusal at ERROR; the attempt's own
# log line says what happened.
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)


NO_CONTEXT = "no presentation context accepted (SOP class or transfer syntax)"
NO_ASSOCIATION = "no association (connection refused, timeout or abort)"


@dataclass(frozen=True)
class SendResult:
    outcome: str  # DELIVERED, RETRY or FAILED (callbacks.Outcome)
    status: int | None = None  # last DICOM or HTTP status; None without an answer
    error: str = ""
    retry_after: float | None = None


# ---- C-STORE ----------------------------------------------------------------------------------


def cstore(
    dest: ExportDestination, files: dict[str, bytes], connect_timeout_s: float, timeout_s: float
) -> SendResult:
    """One association to the destination AE, one C-STORE per file (blocking: run it in a thread).
    Each network step (connect, association, each response) waits at most its timeout."""
    try:
        datasets = {name: pydicom.dcmread(io.BytesIO(data)) for name, data in files.items()}
    except Exception as exc:  # a stored artifact that does not parse is not worth retrying
        return SendResult(Outcome.FAILED, error=f"stored file unreadable: {type(exc).__name__}: {exc}"[:300])
    ae = AE(ae_title=dest.calling_ae_title)
    ae.connection_timeout = connect_timeout_s
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntaxes in _contexts(datasets.values()).items():
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            reply = assoc.acceptor.primitive
            result = getattr(reply, "result", None)
            said = f"{getattr(reply, 'result_str', '')}: {getattr(reply, 'reason_str', '')}"
            outcome = classify_association(True, result)
            return SendResult(outcome, error=f"association rejected ({said})"[:300])
        if assoc.is_aborted and assoc.acceptor.primitive is not None:
            # Accepted, then aborted by us: none of the presentation contexts was accepted.
            return SendResult(Outcome.FAILED, error=NO_CONTEXT)
        return SendResult(classify_association(False, None), error=NO_ASSOCIATION)
    try:
        status: int | None = None
        for name, ds in datasets.items():
            try:
                answer = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as exc:  # no accepted context for this instance
                return SendResult(Outcome.FAILED, error=f"{name}: {exc}"[:300])
            status = int(answer.Status) if "Status" in answer else None
            outcome = classify_cstore(status)
            if outcome != Outcome.DELIVERED:
                said = "no answer" if status is None else f"status 0x{status:04X}"
                return SendResult(outcome, status, f"{name}: C-STORE {said}")
        return SendResult(Outcome.DELIVERED, status)
    finally:
        if assoc.is_established:
            assoc.release()


def _contexts(datasets: object) -> dict[UID, list[UID]]:
    """Per SOP class, the transfer syntaxes to offer: the stored one (a compressed file is sent as
    it is) and, for uncompressed files, the two every SCP accepts (pynetdicom re-encodes those)."""
    out: dict[UID, list[UID]] = {}
    for ds in datasets:  # type: ignore[attr-defined]
        syntax = ds.file_meta.TransferSyntaxUID
        offered = out.setdefault(ds.SOPClassUID, [])
        extra = [] if syntax.is_compressed else [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        for uid in [syntax, *extra]:
            if uid not in offered:
                offered.append(uid)
    return out


# ---- STOW-RS ----------------------------------------------------------------------------------


async def stow(
    http: httpx.AsyncClient, dest: ExportDestination, files: dict[str, bytes], timeout_s: float
) -> SendResult:
    """One POST {url}/studies of every file as multipart/related (DICOM PS3.18 10.5), within
    timeout_s in all; the client connects through netguard's PinnedTransport."""
    boundary = uuid.uuid4().hex
    parts = [
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
        for data in files.values()
    ]
    body = b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"
    headers = {
        "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "accept": "application/dicom+json",
    }
    if dest.auth_header_env:
        token = os.environ.get(dest.auth_header_env, "")
        if not token:
            return SendResult(Outcome.FAILED, error=f"environment variable {dest.auth_header_env} is not set")
        headers["authorization"] = token
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.post(dest.url.rstrip("/") + "/studies", content=body, headers=headers)
    except AddressRefused as exc:
        return SendResult(Outcome.FAILED, error=f"refused address: {exc}"[:300])
    except (TimeoutError, httpx.TimeoutException):
        return SendResult(Outcome.RETRY, error="timeout")
    except httpx.HTTPError as exc:
        return SendResult(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300])
    status = response.status_code
    outcome = classify(status)
    if outcome == Outcome.DELIVERED:
        try:
            failed = failed_instances(response.json())
        except ValueError:
            failed = 0  # a success without a readable body: nothing says an instance failed
        if failed:
            return SendResult(Outcome.FAILED, status, f"STOW-RS: {failed} of {len(files)} instances refused")
        return SendResult(Outcome.DELIVERED, status)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return SendResult(outcome, status, f"STOW-RS: HTTP {status}", retry_after)
