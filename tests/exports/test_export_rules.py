"""Export rules without a PACS: answer classes, the retry schedule shared with callbacks, what the
store schedules at finish, tasks without a callback URL, exportTo validation and configuration."""

from __future__ import annotations

import asyncio
import time

import pytest

from dentalai.config import OPEN_CLIENT_ID, ConfigError, ExportDestination, Settings
from dentalai.errors import DentalAIError
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from grpc_server.callbacks import Outcome, retry_delay
from grpc_server.dispatcher import Dispatcher
from grpc_server.export_policy import classify_association, classify_cstore, destination_for, failed_instances
from grpc_server.export_send import SendResult
from grpc_server.exports import Exporter
from grpc_server.keys import TaskRef
from grpc_server.validation import validate_submission
from tests.conftest import client_entry, make_settings
from tests.exports.helpers import CLIENT, Harness, running_exporter

FILES = {"report.dcm": b"sr", "overlay.dcm": b"sc", "overlay.png": b"png"}  # never parsed here
DESTINATIONS = [
    {"name": "pacs", "kind": "cstore", "ae_title": "PACS", "host": "pacs.local", "port": 104},
    {"name": "web", "kind": "stowrs", "url": "https://pacs.example/dicom-web"},
]


# ---- answer classes ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [0x0000, 0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007])
def test_cstore_success_and_warnings_are_delivered(status: int) -> None:
    assert classify_cstore(status) == Outcome.DELIVERED


@pytest.mark.parametrize("status", [None, 0xA700, 0xA7FF, 0x0110, 0x0213])
def test_cstore_out_of_resources_and_no_answer_are_retried(status: int | None) -> None:
    assert classify_cstore(status) == Outcome.RETRY


@pytest.mark.parametrize("status", [0xA900, 0xA9FF, 0xC000, 0xCFFF, 0x0122, 0x0124, 0x0211])
def test_cstore_refusals_fail_without_retry(status: int) -> None:
    assert classify_cstore(status) == Outcome.FAILED


def test_association_rejections() -> None:
    assert classify_association(True, 1) == Outcome.FAILED  # rejected-permanent (e.g. unknown AE title)
    assert classify_association(True, 2) == Outcome.RETRY  # rejected-transient (busy)
    assert classify_association(False, None) == Outcome.RETRY  # refused connection, timeout, abort


def test_stow_answer_failed_instances() -> None:
    assert failed_instances({"00081198": {"vr": "SQ", "Value": [{}, {}]}}) == 2
    assert failed_instances({"00081199": {"vr": "SQ", "Value": [{}]}}) == 0
    assert failed_instances([]) == 0 and failed_instances({"00081198": {"vr": "SQ"}}) == 0


# ---- the schedule is the callbacks' -------------------------------------------------------------


class AlwaysBusy(Exporter):
    """A destination that answers 'out of resources' (or a Retry-After) to every attempt."""

    retry_after: float | None = None
    calls: list[float] = []

    async def send_files(self, dest: ExportDestination, files: dict[str, bytes]) -> SendResult:
        AlwaysBusy.calls.append(time.monotonic())
        return SendResult(Outcome.RETRY, 0xA700, "C-STORE status 0xA700", AlwaysBusy.retry_after)


async def test_export_retries_on_the_callback_schedule_then_exhausts(settings: Settings) -> None:
    settings = settings.with_overrides(
        exports={"destinations": DESTINATIONS}, callbacks={"retry_delays_s": [0.2, 0.5], "jitter": 0.0}
    )
    harness = Harness(settings)
    AlwaysBusy.calls = []
    ref = await harness.finished(FILES, "pacs")
    async with running_exporter(settings, AlwaysBusy):
        first = await harness.wait_export(ref, {task_pb2.EXPORT_PENDING}, attempts=1)
        info = await harness.wait_export(ref, {task_pb2.EXPORT_EXHAUSTED}, timeout=10)
    # Planned exactly as a callback's: retry_delay over callbacks.retry_delays_s (jitter 0 here).
    planned = first.next_attempt_at.ToNanoseconds() - first.last_attempt_at.ToNanoseconds()
    assert planned / 1e9 == pytest.approx(retry_delay(1, [0.2, 0.5], 0.0), abs=1e-3)
    assert info.attempts == 3 and info.last_status_code == 0xA700 and not info.HasField("next_attempt_at")
    gaps = [b - a for a, b in zip(AlwaysBusy.calls, AlwaysBusy.calls[1:], strict=False)]
    assert len(AlwaysBusy.calls) == 3 and gaps[0] >= 0.2 - 0.02 and gaps[1] >= 0.5 - 0.02
    assert await harness.stats() == {"delivered": 0, "retry": 2, "failed": 0, "exhausted": 1}
    assert await harness.scheduled() == []


async def test_export_honours_retry_after_like_callbacks(settings: Settings) -> None:
    settings = settings.with_overrides(exports={"destinations": DESTINATIONS})
    harness = Harness(settings)
    AlwaysBusy.calls, AlwaysBusy.retry_after = [], 30.0
    try:
        ref = await harness.finished(FILES, "web")
        async with running_exporter(settings, AlwaysBusy):
            info = await harness.wait_export(ref, {task_pb2.EXPORT_PENDING}, attempts=1)
    finally:
        AlwaysBusy.retry_after = None
    planned = (info.next_attempt_at.ToNanoseconds() - info.last_attempt_at.ToNanoseconds()) / 1e9
    assert planned == pytest.approx(30.0, abs=1e-3)  # not the schedule's 0.2 s


# ---- what finish schedules -----------------------------------------------------------------------


async def test_finish_schedules_an_export_only_with_a_destination_and_dicom_results(
    settings: Settings,
) -> None:
    harness = Harness(settings.with_overrides(exports={"destinations": DESTINATIONS}))
    plain = await harness.finished(FILES, "")
    failed = await harness.finished(FILES, "pacs", failed=True)
    no_dicom = await harness.finished({"overlay.png": b"png"}, "pacs")
    due = await harness.finished(FILES, "pacs")
    assert not (await harness.store.get(plain)).HasField("export")
    assert (await harness.export(failed)).state == task_pb2.EXPORT_SKIPPED
    skipped = await harness.export(no_dicom)
    assert skipped.state == task_pb2.EXPORT_SKIPPED and skipped.last_error == "no DICOM results were made"
    pending = await harness.export(due)
    assert pending.state == task_pb2.EXPORT_PENDING and list(pending.files) == ["report.dcm", "overlay.dcm"]
    assert pending.destination == "pacs" and pending.HasField("next_attempt_at")
    assert await harness.scheduled() == [str(due)]
    task, erased = await harness.store.cancel(due)  # erasing a task drops its export too
    assert erased and await harness.scheduled() == []


async def test_an_export_whose_destination_was_removed_fails(settings: Settings) -> None:
    harness = Harness(settings)
    ref = await harness.finished(FILES, "gone")  # finished under a configuration that had it
    async with running_exporter(settings):
        info = await harness.wait_export(ref, {task_pb2.EXPORT_FAILED})
    assert info.attempts == 1 and "not configured" in info.last_error


# ---- tasks without a callback URL ----------------------------------------------------------------


async def test_a_task_without_callback_url_gets_no_callback(settings: Settings, callback_receiver) -> None:
    harness = Harness(settings)
    ref = await harness.finished(FILES, "")
    callback = (await harness.store.get(ref)).callback
    assert callback.state == task_pb2.NO_CALLBACK and callback.attempts == 0
    assert await harness.redis.zrange(harness.keys.callback_schedule, 0, -1) == []
    # A schedule entry left for it (an older finish) is dropped unsent, not failed, not retried.
    await harness.redis.zadd(harness.keys.callback_schedule, {str(ref): time.time()})
    pending = task_pb2.CallbackInfo(state=task_pb2.PENDING)
    await harness.redis.hset(harness.keys.task(ref), "callback", pending.SerializeToString())
    dispatcher = Dispatcher(settings, harness.redis)
    [(claimed, lease)] = await dispatcher.claim(10)
    await dispatcher.deliver(claimed, lease)
    await dispatcher.aclose()
    info = (await harness.store.get(ref)).callback
    assert info.state == task_pb2.NO_CALLBACK and info.attempts == 0
    assert await harness.redis.zrange(harness.keys.callback_schedule, 0, -1) == []
    assert callback_receiver.requests == []
    with pytest.raises(DentalAIError) as refused:
        await harness.store.resend(ref)
    assert refused.value.code == 10010


# ---- exportTo at submission, destinations in the configuration ------------------------------------


def submit(export_to: str) -> pb.SubmitAnalysisRequest:
    request = pb.SubmitAnalysisRequest(
        task_type="ceph", image_data=b"x", callback_url="https://hooks.example.com/cb"
    )
    request.options.export_to = export_to
    return request


def test_export_to_names_a_destination_of_the_client() -> None:
    clients = [
        client_entry("a", "key-a-0123456789abcdef0123456789", export_to="pacs"),
        client_entry("b", "key-b-0123456789abcdef0123456789", export_destinations=["web"]),
    ]
    settings = make_settings(
        "redis://127.0.0.1:1/0", auth={"clients": clients}, exports={"destinations": DESTINATIONS}
    )
    a, b = settings.client("a"), settings.client("b")
    validate_submission(submit("pacs"), settings, client=a)
    validate_submission(submit("web"), settings, client=b)
    for name, client in (("unknown", a), ("web", a), ("pacs", b)):  # unknown, or another client's
        with pytest.raises(DentalAIError) as caught:
            validate_submission(submit(name), settings, client=client)
        assert caught.value.code == 10001
        assert caught.value.details == [("options.exportTo", "not an export destination of this client")]
    options = task_pb2.AnalysisOptions()
    assert destination_for(settings, TaskRef("a", "t"), options) == "pacs"  # the client's default
    assert destination_for(settings, TaskRef("b", "t"), options) == ""
    options.export_to = "web"
    assert destination_for(settings, TaskRef("a", "t"), options) == "web"  # the request's choice
    open_mode = make_settings("redis://127.0.0.1:1/0", exports={"destinations": DESTINATIONS})
    validate_submission(submit("web"), open_mode, client=open_mode.client(OPEN_CLIENT_ID))  # development


@pytest.mark.parametrize(
    ("exports", "clients", "message"),
    [
        ({"destinations": DESTINATIONS * 2}, [], "unique"),
        ({"destinations": [{"name": "x", "kind": "cstore", "ae_title": "PACS"}]}, [], "needs a host"),
        ({"destinations": [{"name": "x", "kind": "cstore", "ae_title": "A" * 17, "host": "h"}]}, [], "1-16"),
        ({"destinations": [{"name": "x", "kind": "stowrs", "url": "ftp://h/x"}]}, [], "http(s) url"),
        ({"destinations": DESTINATIONS}, [{"export_to": "nope"}], "'nope' is not in exports.destinations"),
        ({"destinations": DESTINATIONS}, [{"export_destinations": ["nope"]}], "'nope' is not in"),
    ],
)
def test_bad_destinations_are_refused_at_start(exports: dict, clients: list[dict], message: str) -> None:
    auth = {"clients": [client_entry("a", "key-a-0123456789abcdef0123456789", **c) for c in clients]}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_settings("redis://127.0.0.1:1/0", exports=exports, **({"auth": auth} if clients else {}))


async def test_exporter_ignores_a_stale_schedule_entry(settings: Settings) -> None:
    """An entry whose task expired or is not pending is dropped, not sent."""
    harness = Harness(settings)
    await harness.redis.zadd(harness.keys.export_schedule, {f"{CLIENT}/gone": time.time()})
    async with running_exporter(settings):
        for _ in range(100):
            if not await harness.scheduled():
                break
            await asyncio.sleep(0.02)
    assert await harness.scheduled() == []
