"""A scripted AnalysisService on a real gRPC server: lets client and CLI tests run without Redis."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dentalai.client import AnalysisClient
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import analysis_service_pb2_grpc as pb_grpc
from dentalai.v1 import task_pb2


def _abort(context, grpc_code: int, code: int, message: str, field: str | None = None):
    details = [any_pb2.Any()]
    details[0].Pack(error_details_pb2.ErrorInfo(reason=str(code), domain="dentalai"))
    if field:
        bad = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description="bad")]
        )
        details.append(any_pb2.Any())
        details[1].Pack(bad)
    context.abort_with_status(
        rpc_status.to_status(status_pb2.Status(code=grpc_code, message=message, details=details))
    )


class Scripted(pb_grpc.AnalysisServiceServicer):
    def __init__(self):
        self.requests = []
        self.metadata = []

    def SubmitAnalysis(self, request, context):
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        if request.task_type not in ("ceph", "pano"):
            _abort(context, code_pb2.INVALID_ARGUMENT, 10002, "unsupported taskType", "taskType")
        return pb.SubmitAnalysisResponse(task_id="t-1", status=task_pb2.QUEUED)

    def GetTask(self, request, context):
        if request.task_id != "t-1":
            _abort(context, code_pb2.NOT_FOUND, 10009, "task not found")
        return pb.GetTaskResponse(task=self._task(task_pb2.RUNNING))

    def WatchTask(self, request, context):
        for status in (task_pb2.QUEUED, task_pb2.RUNNING):
            yield pb.WatchTaskResponse(task=self._task(status))
        yield pb.WatchTaskResponse(task=self._done())

    def CancelTask(self, request, context):
        _abort(context, code_pb2.FAILED_PRECONDITION, 10010, "task is RUNNING")

    def Analyze(self, request, context):
        self.requests.append(request.request)
        if request.request.task_type == "pano":
            task = self._task(task_pb2.FAILED)
            task.error.code, task.error.message = 12004, "model for pano is not available"
            return pb.AnalyzeResponse(task=task)
        return pb.AnalyzeResponse(task=self._done())

    @staticmethod
    def _task(status):
        timing = task_pb2.Timing(queued_ms=7, processing_ms=12, total_ms=19)
        return task_pb2.Task(task_id="t-1", task_type="ceph", status=status, timing=timing)

    def _done(self):
        task = self._task(task_pb2.SUCCEEDED)
        task.ceph.landmarks.add(id="S", x=1.0, y=2.0, confidence=0.9)
        task.timing.queued_ms, task.timing.processing_ms, task.timing.total_ms = 3, 40, 43
        return task


@pytest.fixture
def scripted_server():
    """(port, servicer) of a running scripted server."""
    servicer = Scripted()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AnalysisServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(None)


@pytest.fixture
def served(scripted_server):
    port, servicer = scripted_server
    with AnalysisClient(f"grpc://127.0.0.1:{port}", token="secret", timeout=5) as client:
        yield client, servicer
