"""GetArtifact: one artifact of a finished task, with the contract's codes for the cases where
there is none (10009 unknown task, 10010 not finished yet, 10011 no such artifact for it)."""

from __future__ import annotations

from artifacts.kinds import IMAGE_DCM, KINDS
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.v1 import analysis_service_pb2 as pb
from dentalai.v1 import task_pb2
from grpc_server.artifact_store import ArtifactStore
from grpc_server.keys import TaskRef
from grpc_server.store import TaskStore, not_found, status_name


async def get_artifact(
    tasks: TaskStore, artifacts: ArtifactStore, ref: TaskRef, name: str
) -> pb.GetArtifactResponse:
    kind = KINDS.get(name)
    if kind is None:
        raise DentalAIError(
            ErrorCode.INVALID_PARAMETER,
            f"name: must be one of {', '.join(KINDS)}",
            [("name", "unknown artifact")],
        )
    task = await tasks.get(ref)
    if task is None:
        raise not_found(ref)
    task_id = ref.task_id
    status = status_name(task.status)
    if task.status in (task_pb2.QUEUED, task_pb2.RUNNING):
        raise DentalAIError(
            ErrorCode.TASK_NOT_CANCELLABLE,
            f"task {task_id} is {status}; its artifacts exist once it has finished",
        )
    if task.status != task_pb2.SUCCEEDED:
        raise DentalAIError(
            ErrorCode.ARTIFACT_NOT_AVAILABLE, f"task {task_id} is {status}: no result, no artifacts"
        )
    data = await artifacts.get(ref, name) if name in task.artifacts.ready else None
    if data is None:
        raise DentalAIError(ErrorCode.ARTIFACT_NOT_AVAILABLE, _why_missing(task, name))
    return pb.GetArtifactResponse(name=name, media_type=kind.media_type, data=data)


def _why_missing(task: task_pb2.Task, name: str) -> str:
    if task.artifacts.error.code:
        return f"{name} not available: {task.artifacts.error.message}"
    if name == IMAGE_DCM.name and task.artifacts.ready:
        return f"{name} not available: the input was DICOM, so the reports refer to it"
    return f"{name} not available: no artifacts were made for task {task.task_id} (artifacts.enabled off)"
