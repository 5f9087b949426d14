import datetime

from dentalai.v1 import results_pb2 as _results_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    QUEUED: _ClassVar[TaskStatus]
    RUNNING: _ClassVar[TaskStatus]
    SUCCEEDED: _ClassVar[TaskStatus]
    FAILED: _ClassVar[TaskStatus]
    CANCELLED: _ClassVar[TaskStatus]

class CallbackState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALLBACK_STATE_UNSPECIFIED: _ClassVar[CallbackState]
    NOT_DUE: _ClassVar[CallbackState]
    PENDING: _ClassVar[CallbackState]
    DELIVERED: _ClassVar[CallbackState]
    EXHAUSTED: _ClassVar[CallbackState]
    NO_CALLBACK: _ClassVar[CallbackState]

class ExportState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_STATE_UNSPECIFIED: _ClassVar[ExportState]
    EXPORT_PENDING: _ClassVar[ExportState]
    EXPORT_DELIVERED: _ClassVar[ExportState]
    EXPORT_FAILED: _ClassVar[ExportState]
    EXPORT_EXHAUSTED: _ClassVar[ExportState]
    EXPORT_SKIPPED: _ClassVar[ExportState]
TASK_STATUS_UNSPECIFIED: TaskStatus
QUEUED: TaskStatus
RUNNING: TaskStatus
SUCCEEDED: TaskStatus
FAILED: TaskStatus
CANCELLED: TaskStatus
CALLBACK_STATE_UNSPECIFIED: CallbackState
NOT_DUE: CallbackState
PENDING: CallbackState
DELIVERED: CallbackState
EXHAUSTED: CallbackState
NO_CALLBACK: CallbackState
EXPORT_STATE_UNSPECIFIED: ExportState
EXPORT_PENDING: ExportState
EXPORT_DELIVERED: ExportState
EXPORT_FAILED: ExportState
EXPORT_EXHAUSTED: ExportState
EXPORT_SKIPPED: ExportState

class AnalysisOptions(_message.Message):
    __slots__ = ("pixel_spacing_mm", "tooth_numbering", "artifacts", "findings", "deidentify", "export_to")
    PIXEL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    TOOTH_NUMBERING_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    DEIDENTIFY_FIELD_NUMBER: _ClassVar[int]
    EXPORT_TO_FIELD_NUMBER: _ClassVar[int]
    pixel_spacing_mm: float
    tooth_numbering: _results_pb2.ToothNumbering
    artifacts: _containers.RepeatedScalarFieldContainer[str]
    findings: _containers.RepeatedScalarFieldContainer[str]
    deidentify: bool
    export_to: str
    def __init__(self, pixel_spacing_mm: _Optional[float] = ..., tooth_numbering: _Optional[_Union[_results_pb2.ToothNumbering, str]] = ..., artifacts: _Optional[_Iterable[str]] = ..., findings: _Optional[_Iterable[str]] = ..., deidentify: _Optional[bool] = ..., export_to: _Optional[str] = ...) -> None: ...

class TaskError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queued_ms", "processing_ms", "total_ms")
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queued_ms: int
    processing_ms: int
    total_ms: int
    def __init__(self, queued_ms: _Optional[int] = ..., processing_ms: _Optional[int] = ..., total_ms: _Optional[int] = ...) -> None: ...

class CallbackInfo(_message.Message):
    __slots__ = ("url", "state", "attempts", "last_attempt_at", "next_attempt_at", "last_status_code", "last_error", "delivered_at")
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    url: str
    state: CallbackState
    attempts: int
    last_attempt_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    last_status_code: int
    last_error: str
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, url: _Optional[str] = ..., state: _Optional[_Union[CallbackState, str]] = ..., attempts: _Optional[int] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExportInfo(_message.Message):
    __slots__ = ("destination", "state", "attempts", "last_attempt_at", "next_attempt_at", "last_error", "delivered_at", "last_status_code", "files")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    destination: str
    state: ExportState
    attempts: int
    last_attempt_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    delivered_at: _timestamp_pb2.Timestamp
    last_status_code: int
    files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, destination: _Optional[str] = ..., state: _Optional[_Union[ExportState, str]] = ..., attempts: _Optional[int] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status_code: _Optional[int] = ..., files: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskArtifacts(_message.Message):
    __slots__ = ("ready", "error")
    READY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ready: _containers.RepeatedScalarFieldContainer[str]
    error: TaskError
    def __init__(self, ready: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[TaskError, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "task_type", "status", "created_at", "started_at", "finished_at", "error", "pano", "ceph", "callback", "model", "timing", "metadata", "deliveries", "options", "artifacts", "export")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PANO_FIELD_NUMBER: _ClassVar[int]
    CEPH_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_type: str
    status: TaskStatus
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: TaskError
    pano: _results_pb2.PanoResult
    ceph: _results_pb2.CephResult
    callback: CallbackInfo
    model: _results_pb2.ModelInfo
    timing: Timing
    metadata: _struct_pb2.Struct
    deliveries: int
    options: AnalysisOptions
    artifacts: TaskArtifacts
    export: ExportInfo
    def __init__(self, task_id: _Optional[str] = ..., task_type: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[TaskError, _Mapping]] = ..., pano: _Optional[_Union[_results_pb2.PanoResult, _Mapping]] = ..., ceph: _Optional[_Union[_results_pb2.CephResult, _Mapping]] = ..., callback: _Optional[_Union[CallbackInfo, _Mapping]] = ..., model: _Optional[_Union[_results_pb2.ModelInfo, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deliveries: _Optional[int] = ..., options: _Optional[_Union[AnalysisOptions, _Mapping]] = ..., artifacts: _Optional[_Union[TaskArtifacts, _Mapping]] = ..., export: _Optional[_Union[ExportInfo, _Mapping]] = ...) -> None: ...
