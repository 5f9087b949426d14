"""The gRPC client over a real channel: requests as sent, tasks as answered, rich-status errors.

`served` (conftest.py) is a scripted servicer, so these run without Redis or a worker.
"""

from __future__ import annotations

import pytest

from dentalai.client import AnalysisClient, result_of
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.task_json import task_dict
from dentalai.v1 import results_pb2, task_pb2
from ui.backend import GrpcBackend


def test_submit_sends_options_and_bearer_token(served):
    client, servicer = served
    answer = client.submit(
        "pano", image_data=b"img", callback_url="https://x.example/cb", pixel_spacing_mm=0.1,
        tooth_numbering="UNIVERSAL", metadata={"case": 7}, task_id="mine",
    )  # fmt: skip
    assert (answer.task_id, answer.status) == ("t-1", task_pb2.QUEUED)
    sent = servicer.requests[0]
    assert sent.image_data == b"img" and sent.task_id == "mine"
    assert sent.options.pixel_spacing_mm == 0.1 and sent.options.tooth_numbering == results_pb2.UNIVERSAL
    assert sent.metadata["case"] == 7
    assert servicer.metadata[0]["authorization"] == "Bearer secret"


def test_errors_carry_contract_code_and_field(served):
    client, _ = served
    with pytest.raises(DentalAIError) as err:
        client.submit("xray", image_data=b"x", callback_url="https://x.example/cb")
    assert err.value.code == ErrorCode.UNSUPPORTED_TASK_TYPE
    assert err.value.message == "unsupported taskType"
    assert err.value.details == [("taskType", "bad")]
    with pytest.raises(DentalAIError) as err:
        client.get("nope")
    assert err.value.code == ErrorCode.TASK_NOT_FOUND
    with pytest.raises(DentalAIError) as err:
        client.cancel("t-1")
    assert err.value.code == ErrorCode.TASK_NOT_CANCELLABLE


def test_watch_yields_until_final_and_analyze_returns_result(served):
    client, _ = served
    statuses = [t.status for t in client.watch("t-1")]
    assert statuses == [task_pb2.QUEUED, task_pb2.RUNNING, task_pb2.SUCCEEDED]
    task = client.analyze("ceph", image_data=b"x", callback_url="https://x.example/cb", timeout=5)
    assert result_of(task).landmarks[0].id == "S"
    as_json = task_dict(task)
    assert as_json["status"] == "SUCCEEDED" and as_json["ceph"]["landmarks"][0]["x"] == 1.0
    # The UI over gRPC shows timing as JSON numbers like REST (int64 would print as strings).
    assert all(isinstance(v, int) for v in as_json["timing"].values()), as_json["timing"]
    failed = client.analyze("pano", image_data=b"x", callback_url="https://x.example/cb")
    assert failed.status == task_pb2.FAILED and failed.error.code == 12004


def test_unreachable_server_is_an_error_with_a_code():
    with AnalysisClient("127.0.0.1:1", timeout=2) as client, pytest.raises(DentalAIError) as err:
        client.get("t")
    assert err.value.code in (ErrorCode.QUEUE_UNAVAILABLE, ErrorCode.PROCESSING_TIMEOUT)


def test_grpc_backend_shows_tasks_as_rest_does(scripted_server):
    # The UI over gRPC printed int64 timing as strings ("7"); REST prints numbers.
    port, _ = scripted_server
    task = GrpcBackend(f"127.0.0.1:{port}", "https://x.example/cb").get("t-1")
    assert task["timing"] == {"queuedMs": 7, "processingMs": 12, "totalMs": 19}
