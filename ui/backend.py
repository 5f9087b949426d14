"""How the UI talks to the service: REST (default, the clinic's path) or gRPC (the client).

Both answer tasks as the proto3 JSON dict REST shows (`taskId`, `status`, `error`, `ceph`/`pano`),
and raise `DentalAIError` with the contract code for refused submissions.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

import httpx

from dentalai.client import AnalysisClient
from dentalai.errors import DentalAIError, ErrorCode
from dentalai.task_json import task_dict
from dentalai.v1 import task_pb2


class Backend(Protocol):
    description: str

    def submit(self, task_type: str, image: bytes, options: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, task_id: str) -> dict[str, Any]: ...

    def artifact(self, task_id: str, name: str) -> bytes: ...


class ServiceUnreachable(Exception):
    """The service did not answer at all (not a contract error: there is no code to show)."""


class RestBackend:
    def __init__(
        self,
        base_url: str,
        callback_url: str,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.callback_url = callback_url
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.description = f"REST {self.base_url}"

    def submit(self, task_type: str, image: bytes, options: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "taskType": task_type,
            "imageBase64": base64.b64encode(image).decode("ascii"),
            "callbackUrl": self.callback_url,
            "metadata": {"source": "dentalai-ui"},
        }
        if options:
            body["options"] = options
        return self._envelope(self._request("POST", "/api/v1/analyze", json=body))

    def get(self, task_id: str) -> dict[str, Any]:
        return self._envelope(self._request("GET", f"/api/v1/tasks/{task_id}"))

    def artifact(self, task_id: str, name: str) -> bytes:
        response = self._request("GET", f"/api/v1/tasks/{task_id}/{name}")
        if response.is_success:
            return response.content
        self._envelope(response)  # raises the contract error
        raise DentalAIError(ErrorCode.INTERNAL, f"HTTP {response.status_code}")

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.HTTPError as err:
            raise ServiceUnreachable(f"{self.description}: {err}") from None

    @staticmethod
    def _envelope(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise DentalAIError(ErrorCode.INTERNAL, f"HTTP {response.status_code}: not JSON") from None
        code = int(body.get("code", 0)) if isinstance(body, dict) else 0
        if response.is_success and code == 0:
            return dict(body.get("data") or {})
        details = [(d.get("field", ""), d.get("reason", "")) for d in body.get("details") or []]
        try:
            error_code = ErrorCode(code)
        except ValueError:
            error_code = ErrorCode.INTERNAL
        raise DentalAIError(error_code, str(body.get("message") or f"HTTP {response.status_code}"), details)


class GrpcBackend:
    def __init__(self, target: str, callback_url: str, token: str | None = None) -> None:
        self._client = AnalysisClient(target, token=token)
        self.callback_url = callback_url
        self.description = f"gRPC {self._client.target}"

    def submit(self, task_type: str, image: bytes, options: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self._client.submit(
                task_type,
                image_data=image,
                callback_url=self.callback_url,
                metadata={"source": "dentalai-ui"},
                pixel_spacing_mm=options.get("pixelSpacingMm"),
                tooth_numbering=options.get("toothNumbering"),
                findings=options.get("findings"),
            )
        except DentalAIError as err:
            raise self._unreachable(err) from None
        return {"taskId": answer.task_id, "status": task_pb2.TaskStatus.Name(answer.status)}

    def get(self, task_id: str) -> dict[str, Any]:
        try:
            return task_dict(self._client.get(task_id))  # the same JSON as REST, timing as numbers
        except DentalAIError as err:
            raise self._unreachable(err) from None

    def artifact(self, task_id: str, name: str) -> bytes:
        try:
            return self._client.artifact(task_id, name).data
        except DentalAIError as err:
            raise self._unreachable(err) from None

    def _unreachable(self, err: DentalAIError) -> Exception:
        # The client maps a dead channel to 10008 for lack of ErrorInfo; say what happened instead.
        if err.code == ErrorCode.QUEUE_UNAVAILABLE and "connect" in err.message.lower():
            return ServiceUnreachable(f"{self.description}: {err.message}")
        return err
