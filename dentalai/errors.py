"""Error codes of CONTRACT.md (sections 1 and 5) and the exception that carries them."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    # Submission (answered synchronously by the API).
    INVALID_PARAMETER = 10001
    UNSUPPORTED_TASK_TYPE = 10002
    UNAUTHENTICATED = 10003
    TASK_ID_CONFLICT = 10004
    BODY_TOO_LARGE = 10005
    UNSUPPORTED_MEDIA_TYPE = 10006
    QUEUE_FULL = 10007
    QUEUE_UNAVAILABLE = 10008
    TASK_NOT_FOUND = 10009
    TASK_NOT_CANCELLABLE = 10010
    ARTIFACT_NOT_AVAILABLE = 10011
    # Processing (reported in the task and its callback).
    IMAGE_DOWNLOAD_FAILED = 11001
    IMAGE_DECODE_FAILED = 11002
    IMAGE_CHECK_FAILED = 11003
    INFERENCE_FAILED = 12001
    PROCESSING_TIMEOUT = 12002
    NO_USABLE_RESULT = 12003
    MODEL_UNAVAILABLE = 12004
    TASK_ABANDONED = 12005
    INTERNAL = 13001


class DentalAIError(Exception):
    """An error with its contract code; `details` lists (field, reason) pairs for 10001."""

    def __init__(self, code: ErrorCode, message: str, details: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details or []

    def __repr__(self) -> str:
        return f"DentalAIError({int(self.code)}, {self.message!r})"
