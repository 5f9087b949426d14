"""Who is calling and which task it names, without a server (found unguarded by mutation testing,
tools/mutants.yaml):

- a presented key shorter than MIN_SECRET_CHARS is refused even when its digest is configured;
- only the Bearer scheme carries a key;
- every configured digest of a client works (key rotation), and a key is found by its digest only;
- a task reference parses only as "{client}/{taskId}" with both parts;
- two clients' tasks of the same taskId keep their artifacts apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dentalai.config import MIN_SECRET_CHARS, Settings
from grpc_server.artifact_store import ArtifactStore
from grpc_server.clients import Clients
from grpc_server.connection import redis_client
from grpc_server.keys import Keys, TaskRef
from tests.conftest import api_key, client_entry, make_settings

KEY_A, KEY_A_NEW, KEY_B = api_key("clinic-a"), api_key("clinic-a-rotated"), api_key("clinic-b")
SHORT = "short-key-configured-by-mistake"[: MIN_SECRET_CHARS - 1]


def clients() -> Clients:
    auth = {
        "clients": [
            client_entry("clinic-a", KEY_A, KEY_A_NEW),
            client_entry("clinic-b", KEY_B),
            client_entry("careless", SHORT),
        ]
    }
    return Clients(make_settings("redis://127.0.0.1:1/0", auth=auth).auth)


def caller(value: str) -> list[tuple[str, str]]:
    return [("user-agent", "grpc-python"), ("authorization", value)]


def test_a_short_key_is_refused_even_when_its_digest_is_configured() -> None:
    assert len(SHORT) < MIN_SECRET_CHARS
    assert clients().resolve(caller(f"Bearer {SHORT}")) is None


def test_only_the_bearer_scheme_carries_a_key() -> None:
    c = clients()
    assert c.resolve(caller(f"Bearer {KEY_A}")).id == "clinic-a"  # type: ignore[union-attr]
    assert c.resolve(caller(f"bearer {KEY_A}")).id == "clinic-a"  # type: ignore[union-attr]
    for value in (f"Basic {KEY_A}", f"Token {KEY_A}", KEY_A, f"{KEY_A} {KEY_A}"):
        assert c.resolve(caller(value)) is None, value
    assert c.resolve([("user-agent", "x")]) is None and c.resolve(None) is None


def test_each_key_finds_its_own_client_and_both_rotated_keys_work() -> None:
    c = clients()
    found = {key: c.resolve(caller(f"Bearer {key}")) for key in (KEY_A, KEY_A_NEW, KEY_B)}
    assert {key: client.id for key, client in found.items() if client} == {
        KEY_A: "clinic-a", KEY_A_NEW: "clinic-a", KEY_B: "clinic-b",
    }
    assert c.resolve(caller(f"Bearer {api_key('nobody')}")) is None


@pytest.mark.parametrize("text", ["c/t", b"c/t"])
def test_a_task_reference_parses_back(text: str | bytes) -> None:
    assert TaskRef.parse(text) == TaskRef("c", "t") and str(TaskRef("c", "t")) == "c/t"


@pytest.mark.parametrize("text", ["ct", "/t", "c/", "/", ""])
def test_a_half_task_reference_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        TaskRef.parse(text)


@pytest.fixture
async def artifact_store(settings: Settings) -> AsyncIterator[ArtifactStore]:
    redis = redis_client(settings)
    yield ArtifactStore(redis, Keys(settings.key_prefix), 600)
    await redis.aclose()


async def test_two_clients_same_task_id_keep_their_artifacts_apart(artifact_store: ArtifactStore) -> None:
    a, b = TaskRef("clinic-a", "order-1"), TaskRef("clinic-b", "order-1")
    assert Keys().artifacts(a) != Keys().artifacts(b)
    await artifact_store.put(a, {"report.pdf": b"%PDF of clinic a's patient"})
    assert await artifact_store.get(b, "report.pdf") is None
    await artifact_store.put(b, {"report.pdf": b"%PDF of clinic b's patient"})
    assert await artifact_store.get(a, "report.pdf") == b"%PDF of clinic a's patient"
