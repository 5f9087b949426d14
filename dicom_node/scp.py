"""`dentalai dicom`: the Storage SCP (pynetdicom) and its limits.

pynetdicom runs each association in a thread of its own; the task store is asyncio (redis.asyncio),
so the node runs one event loop in a thread and each C-STORE handler reads and routes its instance
in its association's thread, then waits for `Intake.submit` on that loop for at most
`dicom.store_timeout_s` before it answers 0xA700.

Negotiation refuses, before any data: a calling AE title not in `dicom.callers` (A-ASSOCIATE-RJ,
"calling AE title not recognized"), a called AE title other than ours ("called AE title not
recognized"), more than `maximum_associations` ("local limit exceeded"), and each presentation
context of a SOP class or transfer syntax not offered. While a data set arrives, its bytes are
counted: one larger than `limits.max_image_bytes` aborts the association (A-ABORT), so memory per
association stays bounded however large an instance a sender tries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import sys
import threading
import time
import weakref
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID, UncompressedTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import Verification

from dentalai.config import ClientSettings, Settings
from dicom_node import status
from dicom_node.intake import Intake, Receipt, Received, Routed
from dicom_node.routing import Router
from grpc_server.connection import redis_client
from grpc_server.keys import Keys
from grpc_server.store import TaskStore
from pipelines.registry import TASK_TYPES

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0  # on SIGTERM, C-STOREs in progress get this long to be answered
# Slack over limits.max_image_bytes for what is counted besides the data set's own bytes.
_PDV_SLACK = 64 * 1024


class ConfigProblem(Exception):
    """The dicom section cannot serve as configured (the process exits with status 2)."""


def offered_syntaxes(settings: Settings) -> list[str]:
    """dicom.transfer_syntaxes less those this install cannot decode (the worker could not analyse
    them): the sender then proposes or transcodes to another (Orthanc does)."""
    from pydicom.pixels import get_decoder

    offered = []
    for uid in map(UID, settings.dicom.transfer_syntaxes):
        try:
            usable = uid in UncompressedTransferSyntaxes or get_decoder(uid).is_available
        except NotImplementedError:
            usable = False
        if usable:
            offered.append(str(uid))
        else:
            log.warning("transfer syntax not offered: no decoder in this install", extra={"uid": str(uid)})
    return offered


class Node:
    """The SCP's handlers and the event loop they submit on."""

    def __init__(self, settings: Settings, intake: Intake, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.intake = intake
        self.loop = loop
        self.callers: dict[str, ClientSettings] = {
            c.ae_title: settings.client(c.client) for c in settings.dicom.callers
        }
        self.max_bytes = settings.limits.max_image_bytes + _PDV_SLACK
        self._receiving: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._busy = 0  # C-STORE handlers running now (a stop waits for them, not for idle peers)
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def build_ae(self) -> AE:
        cfg = self.settings.dicom
        ae = AE(ae_title=cfg.ae_title)
        ae.maximum_associations = cfg.maximum_associations
        ae.maximum_pdu_size = cfg.maximum_pdu_size
        ae.acse_timeout = cfg.acse_timeout_s
        ae.dimse_timeout = cfg.dimse_timeout_s
        ae.network_timeout = cfg.network_timeout_s
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.callers)
        syntaxes = offered_syntaxes(self.settings)
        for sop_class in cfg.sop_classes:
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(Verification, [str(s) for s in UncompressedTransferSyntaxes[:3]])
        return ae

    def handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_PDU_RECV, self.on_pdu),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_ABORTED, self.on_aborted),
        ]

    # ---- handlers (association threads) --------------------------------------------------------

    def on_store(self, event: Any) -> Dataset:
        """A C-STORE: answered once its task is stored, or with the status of why not."""
        caller = str(event.assoc.requestor.ae_title).strip()
        request = event.request
        received = Received(
            client=self.callers[caller],
            calling_ae=caller,
            data=event.encoded_dataset(include_meta=True),
            sop_class_uid=str(request.AffectedSOPClassUID or ""),
            sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
        )
        with self._lock:
            self._busy += 1
        try:
            receipt = self._receipt(received)
        except Exception:
            log.exception("C-STORE failed unexpectedly", extra={"clientId": received.client.id})
            receipt = Receipt(status.PROCESSING_FAILURE, "refused", "internal error")
        finally:
            with self._lock:
                self._busy -= 1
        asyncio.run_coroutine_threadsafe(self.intake.record(received, receipt), self.loop)  # not awaited
        return _answer(receipt)

    def _receipt(self, received: Received) -> Receipt:
        checked = self.intake.examine(received)
        if not isinstance(checked, Routed):
            return checked
        future = asyncio.run_coroutine_threadsafe(self.intake.submit(received, checked), self.loop)
        try:
            return future.result(timeout=self.settings.dicom.store_timeout_s)
        except concurrent.futures.TimeoutError:
            # The create is one Lua script: it ran whole or not at all; a retry finds it if it ran.
            future.cancel()
            log.warning("task store slower than store_timeout_s", extra={"clientId": received.client.id})
            return Receipt(status.OUT_OF_RESOURCES, "unavailable", "task store too slow; retry later")

    def on_pdu(self, event: Any) -> None:
        """Count each data set's bytes as they arrive; abort an association sending too many."""
        pdu = event.pdu
        if not isinstance(pdu, P_DATA_TF):
            return
        assoc = event.assoc
        count = self._receiving.get(assoc, 0)
        for item in pdu.presentation_data_value_items:
            value = item.presentation_data_value or b""
            if value[:1] and value[0] & 0x01:  # a command fragment: a new message begins
                count = 0
            else:
                count += len(value)
        self._receiving[assoc] = count
        if count > self.max_bytes:
            caller = str(assoc.requestor.ae_title).strip()
            log.warning(
                "association aborted: data set larger than limits.max_image_bytes",
                extra={"callingAe": caller, "bytes": count},
            )
            self._receiving[assoc] = 0
            assoc.abort(block=False)

    def on_rejected(self, event: Any) -> None:
        requestor = event.assoc.requestor
        log.warning(
            "association rejected",
            extra={"callingAe": str(requestor.ae_title).strip(), "address": requestor.address},
        )

    def on_aborted(self, event: Any) -> None:
        log.info("association aborted", extra={"callingAe": str(event.assoc.requestor.ae_title).strip()})


def _answer(receipt: Receipt) -> Dataset:
    answer = Dataset()
    answer.Status = receipt.status
    if receipt.status != status.SUCCESS and receipt.comment:
        answer.ErrorComment = receipt.comment.replace("\\", "/")[:64]  # LO: 64 characters
    return answer


def check(settings: Settings) -> Router:
    """What the configuration cannot tell alone: callers to admit, rule keywords, task types and
    options. Raises ConfigProblem."""
    if not settings.dicom.callers:
        raise ConfigProblem("dicom.callers is empty: no AE title may send (docs/dicom.md)")
    try:
        return Router(settings.dicom.rules, TASK_TYPES)
    except ValueError as exc:
        raise ConfigProblem(str(exc)) from None


def serve(settings: Settings, stop: threading.Event) -> None:
    """Run the node until `stop` is set: the event loop thread, the SCP, then a graceful stop."""
    router = check(settings)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="dicom-store", daemon=True)
    loop_thread.start()
    redis = redis_client(settings)
    store = TaskStore(redis, Keys(settings.key_prefix), settings.tasks.result_ttl_s)
    node = Node(settings, Intake(settings, store, router), loop)
    ae = node.build_ae()
    cfg = settings.dicom
    server = ae.start_server((cfg.host, cfg.port), block=False, evt_handlers=node.handlers())
    log.info(
        "dicom node ready",
        extra={"aeTitle": cfg.ae_title, "host": cfg.host, "port": server.server_address[1],
               "callers": len(cfg.callers), "rules": len(router.rules)},
    )  # fmt: skip
    try:
        # With a timeout: the kernel may deliver SIGTERM to another of this process's threads, and
        # a main thread blocked in an untimed wait would then never run the Python handler (seen:
        # a stop ignored until `dentalai up` killed the node 30 s later).
        while not stop.wait(0.2):
            pass
    finally:
        server.shutdown()  # no new associations; a C-STORE being handled is answered first
        deadline = time.monotonic() + STOP_GRACE_S
        while node.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        for assoc in server.active_associations:
            assoc.abort()  # the sender retries what it has not had answered
        asyncio.run_coroutine_threadsafe(redis.aclose(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        log.info("dicom node stopped")


def main(settings: Settings) -> None:
    """Entry point of `dentalai dicom`."""
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, logging.getLogger().level))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve(settings, stop)
    except ConfigProblem as exc:
        print(f"dentalai: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
