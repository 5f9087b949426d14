"""Schemathesis over the bridge's own /openapi.json, against the real stack of tests/rest (gRPC
server, echo worker, dispatcher, bridge processes; bearer auth on): positive and negative cases
for every operation. No answer is ever a 5xx, every 4xx is the error envelope with a contract code
(10001-10010), every JSON 2xx is the success envelope."""

from __future__ import annotations

import hypothesis
import schemathesis
from hypothesis import HealthCheck

from rest_bridge.app import create_app
from tests.rest.conftest import (
    RestStack,
    assert_error,
    rest,  # noqa: F401 (the stack fixture of tests/rest, shared here)
    stack_settings,
)

CONTRACT_CODES = set(range(10001, 10011))


def _bridge_schema() -> dict:
    """The OpenAPI document the bridge serves, built at import so pytest can parametrize over it
    (schemathesis' lazy `from_fixture` loader does not run under pytest 9). The first test checks
    that the running stack serves exactly this document."""
    return create_app(stack_settings("redis://127.0.0.1:1/0")).openapi()


SPEC = _bridge_schema()
schema = schemathesis.openapi.from_dict(SPEC)
schema.config.generation.update(max_examples=40, no_shrink=True, database="none")


def test_the_stack_serves_this_schema(rest: RestStack) -> None:  # noqa: F811
    assert rest.http.get("/openapi.json").json() == SPEC


@schema.parametrize()
@hypothesis.settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_no_server_error_and_always_an_envelope(case: schemathesis.Case, rest: RestStack) -> None:  # noqa: F811
    response = case.call(base_url=rest.url, headers={"authorization": "Bearer tok-a"}, timeout=15)
    status = response.status_code
    assert status < 500, (case.method, case.path, status, response.text[:500])
    if 400 <= status < 500:
        assert response.json()["code"] in CONTRACT_CODES, response.text[:500]
        assert_error(_Adapter(response), status, response.json()["code"])
    elif case.path != "/metrics":
        body = response.json()
        assert body["code"] == 0 and isinstance(body["message"], str) and "data" in body, body


class _Adapter:
    """A schemathesis (requests) response seen through the httpx-shaped attributes assert_error reads."""

    def __init__(self, response: object) -> None:
        self._response = response
        self.status_code = response.status_code  # type: ignore[attr-defined]
        # schemathesis keeps every value of a header in a list
        self.headers = {k.lower(): v[0] for k, v in response.headers.items()}  # type: ignore[attr-defined]
        self.text = response.text  # type: ignore[attr-defined]

    def json(self) -> object:
        return self._response.json()  # type: ignore[attr-defined]
