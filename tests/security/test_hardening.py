"""Settings that close doors (issue 31 item 6): the open mode's Host check, /metrics and gRPC
reflection switched off, and secrets the configuration refuses."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dentalai.config import ConfigError, load_config
from tests.conftest import RedisServer, make_settings
from tests.rest.conftest import assert_error, bridge_to, grpc_for


async def test_open_mode_refuses_other_host_names(redis_server: RedisServer) -> None:
    settings = make_settings(redis_server.url)  # auth.open
    async with grpc_for(settings), bridge_to(settings, token=None) as http:
        for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
            answer = await http.get("/api/v1/tasks/none", headers={"host": host})
            assert_error(answer, 404, 10009)
        for host in ("attacker.example", "attacker.example:8000", "localhost.attacker.example", ""):
            for path in ("/api/v1/tasks/none", "/healthz", "/docs"):
                assert_error(await http.get(path, headers={"host": host}), 400, 10001)


async def test_with_clients_any_host_is_served(redis_server: RedisServer) -> None:
    from tests.rest.conftest import stack_settings

    settings = stack_settings(redis_server.url)
    async with grpc_for(settings), bridge_to(settings) as http:
        assert (await http.get("/healthz", headers={"host": "api.clinic.example"})).status_code == 200


async def test_metrics_and_reflection_can_be_switched_off(redis_server: RedisServer) -> None:
    on = make_settings(redis_server.url)
    off = make_settings(redis_server.url, api={"metrics_enabled": False}, grpc={"reflection": False})
    for settings, served in ((on, True), (off, False)):
        async with grpc_for(settings), bridge_to(settings, token=None) as http:
            assert ((await http.get("/metrics")).status_code == 200) is served
            async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc.port}") as channel:
                stub = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                try:
                    async for answer in stub.ServerReflectionInfo(iter([request])):
                        names = {s.name for s in answer.list_services_response.service}
                        assert "dentalai.v1.AnalysisService" in names and served
                        break
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.UNIMPLEMENTED and not served


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DENTALAI_CALLBACKS__SIGNING_SECRETS", '["REPLACE-with-a-generated-secret-of-48-characters"]'),
        ("DENTALAI_CALLBACKS__SIGNING_SECRETS", '["changeme-changeme-changeme-changeme-00"]'),
        ("DENTALAI_CALLBACKS__SIGNING_SECRETS", '["too-short-secret"]'),
        ("DENTALAI_REDIS_URL", "redis://:REPLACE-redis-password-0123456789abcdef@redis:6379/0"),
        ("DENTALAI_REDIS_URL", "redis://:short@redis:6379/0"),
        ("DENTALAI_AUTH__CLIENTS", '[{"id": "a", "key_sha256": ["not-a-digest"]}]'),
        ("DENTALAI_AUTH__CLIENTS", '[{"id": "bad/id", "key_sha256": ["' + "0" * 64 + '"]}]'),
        ("DENTALAI_AUTH__CLIENTS", '[{"id": "a", "key_sha256": ["' + "0" * 64 + '"]}, '
                                   '{"id": "b", "key_sha256": ["' + "0" * 64 + '"]}]'),
    ],
)
def test_placeholder_short_or_malformed_secrets_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load_config(environ={name: value})


def test_open_mode_and_clients_are_exclusive_and_one_is_needed() -> None:
    clients = '[{"id": "a", "key_sha256": ["' + "1" * 64 + '"]}]'
    with pytest.raises(ConfigError):
        load_config(environ={"DENTALAI_AUTH__OPEN": "true", "DENTALAI_AUTH__CLIENTS": clients})
    assert load_config(environ={}).auth_problem() is not None
    assert load_config(environ={"DENTALAI_AUTH__OPEN": "true"}).auth_problem() is None
    assert load_config(environ={"DENTALAI_AUTH__CLIENTS": clients}).auth_problem() is None
    generated = load_config(environ={"DENTALAI_CALLBACKS__SIGNING_SECRETS": f'["{"s" * 40}"]'})
    assert generated.callbacks.signing_secrets
