"""Export rules (docs/dicom.md "Results back to the PACS"): which destination a task's results go
to, which a client may name, and how a destination's answer is classified. Pure functions; the
attempts are export_send.py's, the schedule exports.py's, and the retry schedule is the callbacks'
(callbacks.plan_next).

Classes of a C-STORE answer (DICOM PS3.4 B.2.3, PS3.7 C):
- DELIVERED: Success 0x0000 and the warnings (0x0001, 0x0107, 0x0116, 0xB000-0xBFFF): stored.
- RETRY: no answer (connection refused, timeout, association aborted), a transient association
  rejection, 0xA700-0xA7FF "Refused: Out of Resources", 0x0110 processing failure, 0x0213
  resource limitation: the destination may store it later.
- FAILED: anything else - a permanent association rejection (e.g. called AE title not recognised),
  no accepted presentation context for the SOP class or transfer syntax, 0xA900-0xA9FF "Data Set
  does not match SOP Class", 0xC000-0xCFFF "Cannot understand", 0x0122 SOP class not supported,
  0x0124 not authorised: sending the same bytes again would be refused again.
STOW-RS answers take the callbacks' HTTP classes (callbacks.classify: 2xx delivered; no answer,
408, 425, 429, 5xx retried; any other status failed); a 2xx answer that lists failed instances
(Failed SOP Sequence) failed too.
"""

from __future__ import annotations

from typing import Any

from dentalai.config import ClientSettings, Settings
from dentalai.v1 import task_pb2
from grpc_server.callbacks import Outcome
from grpc_server.keys import TaskRef

CSTORE_WARNINGS = frozenset({0x0001, 0x0107, 0x0116})
CSTORE_TRANSIENT = frozenset({0x0110, 0x0213})
FAILED_SOP_SEQUENCE = "00081198"  # DICOM JSON tag of the STOW-RS answer's failed instances


def destination_for(settings: Settings, ref: TaskRef, options: task_pb2.AnalysisOptions) -> str:
    """The destination of a task's results: the request's exportTo, else its client's export_to;
    "" for none. A client no longer configured keeps only what its request named."""
    if options.export_to:
        return options.export_to
    try:
        return settings.client(ref.client_id).export_to
    except KeyError:
        return ""


def may_name(settings: Settings, client: ClientSettings, name: str) -> bool:
    """Whether `client` may send its results to destination `name`: its export_to and its
    export_destinations (any configured one in the open development mode). Another client's PACS
    is not a place for this client's patients."""
    if settings.exports.destination(name) is None:
        return False
    return settings.auth.open or name == client.export_to or name in client.export_destinations


def classify_cstore(status: int | None) -> str:
    """DELIVERED, RETRY or FAILED for a C-STORE response status (None: no answer)."""
    if status is None:
        return Outcome.RETRY
    if status == 0x0000 or status in CSTORE_WARNINGS or 0xB000 <= status <= 0xBFFF:
        return Outcome.DELIVERED
    if 0xA700 <= status <= 0xA7FF or status in CSTORE_TRANSIENT:
        return Outcome.RETRY
    return Outcome.FAILED


def classify_association(rejected: bool, result: int | None) -> str:
    """An association that was not established: RETRY unless the acceptor rejected it for good
    (A-ASSOCIATE-RJ result 1, "rejected-permanent"; 2 is "rejected-transient")."""
    return Outcome.FAILED if rejected and result == 1 else Outcome.RETRY


def failed_instances(answer: Any) -> int:
    """How many instances a STOW-RS answer (DICOM JSON) lists as failed; 0 when none or unreadable."""
    if not isinstance(answer, dict):
        return 0
    failed = answer.get(FAILED_SOP_SEQUENCE)
    values = failed.get("Value") if isinstance(failed, dict) else None
    return len(values) if isinstance(values, list) else 0
