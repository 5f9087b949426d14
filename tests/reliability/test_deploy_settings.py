"""The deployment files configure what they mean to: every DENTALAI_* variable named in
docker-compose.yml, deploy/ and Dockerfile.gpu is a setting (read through dentalai.config's own
mapping, so a name the config would silently ignore, such as DENTALAI_GRPC_TARGET, fails here);
the shipped Kubernetes Secret is a template the config refuses, while the ConfigMap with a Secret
of generated values passes; and the compose stack, given generated secrets, wires every process
to Redis (with its password), the bridge to the gRPC server and the UI to the API."""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import BaseModel

from dentalai.api_keys import key_digest
from dentalai.cli import print_new_key
from dentalai.config import ENV_PREFIX, ConfigError, Settings, _env_path, load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile.gpu"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCS = ROOT / "docs" / "deployment.md"

# DENTALAI_* names that are not settings and are read by something else.
NOT_SETTINGS = {
    "DENTALAI_CONFIG": "the user config file (dentalai.config.load_config)",
    "DENTALAI_TOKEN": "the API key of the CLI and the tester UI",
}
# A name in the files; a match ending in "_" is a prefix in prose (DENTALAI_<SECTION>__<KEY>).
NAME = re.compile(r"DENTALAI_[A-Z0-9_]*")


def setting_of(name: str) -> str | None:
    """The dotted setting a DENTALAI_* variable sets, by the config's own mapping; None if none."""
    path = _env_path(name[len(ENV_PREFIX):].lower())
    if not path:
        return None
    model: Any = Settings
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return None  # a whole section, not a key
    return ".".join(path)


def unknown_names(text: str) -> set[str]:
    names = {n for n in NAME.findall(text) if not n.endswith("_")}
    return {n for n in names if n not in NOT_SETTINGS and setting_of(n) is None}


def _deploy_files() -> list[Path]:
    return [COMPOSE, DOCKERFILE, *sorted(p for p in DEPLOY.rglob("*") if p.is_file())]


def test_every_dentalai_variable_in_the_deployment_files_is_a_setting() -> None:
    offenders: dict[str, list[str]] = {}
    for path in _deploy_files():
        for name in unknown_names(path.read_text()):
            offenders.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not offenders, f"DENTALAI_* names that are no setting (the config ignores them): {offenders}"


def test_the_name_check_catches_names_the_config_ignores() -> None:
    planted = """
      DENTALAI_GRPC_TARGET: grpc:50051          # no grpc.target: silently ignored by the config
      DENTALAI_AUTH__TOKENS: '["t"]'            # auth.tokens is gone
      DENTALAI_BUILD_PLANS: "1"
      DENTALAI_API__GRPC_TARGET: grpc:50051
      DENTALAI_WORKER_ENGINE: auto              # single underscore, names a known key
      DENTALAI_REDIS_URL: redis://x
      DENTALAI_CONFIG: /etc/dentalai/config.yaml
      DENTALAI_TOKEN: k    # see DENTALAI_<SECTION>__<KEY>
    """
    assert unknown_names(planted) == {"DENTALAI_GRPC_TARGET", "DENTALAI_AUTH__TOKENS", "DENTALAI_BUILD_PLANS"}
    assert setting_of("DENTALAI_API__GRPC_TARGET") == "api.grpc_target"
    assert setting_of("DENTALAI_WORKER_MODELS_DIR") == "worker.models_dir"
    assert setting_of("DENTALAI_AUTH") is None  # a section is no key


# ---- Kubernetes: the Secret template and a generated Secret -------------------------------------


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise LookupError(f"{kind} {name}")


TEMPLATE: dict[str, str] = _k8s("Secret", "dentalai-secrets")["stringData"]


@pytest.fixture
def configmap(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(_k8s("ConfigMap", "dentalai-config")["data"]["config.yaml"])
    return str(path)


def _new_key(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(key, key_sha256) as `dentalai key` prints them."""
    assert print_new_key() == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    return lines["key"].strip(), lines["key_sha256"].strip()


def whsec() -> str:
    """A signing secret as `echo "whsec_$(openssl rand -base64 32)"` makes one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def generated_secret(key_sha256: str) -> dict[str, str]:
    """The template's keys with values made as docs/deployment.md says."""
    values = {
        "DENTALAI_AUTH__CLIENTS": json.dumps([{"id": "clinic-a", "key_sha256": [key_sha256]}]),
        "DENTALAI_CALLBACKS__SIGNING_SECRETS": json.dumps([whsec()]),
        "REDIS_PASSWORD": secrets.token_hex(32),  # openssl rand -hex 32
    }
    assert set(values) == set(TEMPLATE)
    return values


def workload_env(workload: str, secret: Mapping[str, str]) -> dict[str, str]:
    """The environment Kubernetes gives the first container of a workload from the Secret: all of
    it (envFrom) and its secretKeyRefs (DENTALAI_REDIS__PASSWORD from REDIS_PASSWORD, ...)."""
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == workload:
                container = doc["spec"]["template"]["spec"]["containers"][0]
                env = dict(secret) if container.get("envFrom") else {}
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    env[entry["name"]] = secret[ref["key"]] if ref else entry["value"]
                env.pop("DENTALAI_CONFIG", None)  # the test passes the ConfigMap's file itself
                return env
    raise LookupError(workload)


def test_the_shipped_secret_is_refused(configmap: str) -> None:
    with pytest.raises(ConfigError):
        load_config(configmap, environ=dict(TEMPLATE))
    # Each of its values alone is refused, naming its setting.
    settings_in_it = {name: setting_of(name) for name in TEMPLATE if name.startswith(ENV_PREFIX)}
    assert set(settings_in_it.values()) == {"auth.clients", "callbacks.signing_secrets"}
    for name, setting in settings_in_it.items():
        with pytest.raises(ConfigError) as refused:
            load_config(configmap, environ={name: TEMPLATE[name]})
        assert f": {setting}" in str(refused.value), (name, str(refused.value))
    # REDIS_PASSWORD (Redis, its sentinels, and the processes using them as redis.password) is a
    # placeholder that redis.yaml's init script and the config both refuse.
    assert "REPLACE" in TEMPLATE["REDIS_PASSWORD"]
    with pytest.raises(ConfigError) as refused:
        load_config(configmap, environ=workload_env("dentalai-grpc", TEMPLATE))
    assert ": redis.password" in str(refused.value)


def test_configmap_with_a_generated_secret_passes(configmap: str, capsys: pytest.CaptureFixture[str]) -> None:
    key, digest = _new_key(capsys)
    assert digest == key_digest(key)
    secret = generated_secret(digest)
    settings = load_config(configmap, environ=secret)
    assert settings.auth_problem() is None
    assert [c.id for c in settings.auth.clients] == ["clinic-a"]
    assert settings.auth.clients[0].key_sha256 == [key_digest(key)]
    assert settings.callbacks.signing_secrets == json.loads(secret["DENTALAI_CALLBACKS__SIGNING_SECRETS"])
    # Each process that uses Redis gets the Secret's one password for the nodes and the sentinels.
    for workload in ("dentalai-grpc", "dentalai-worker-gpu", "dentalai-dispatcher"):
        own = load_config(configmap, environ=workload_env(workload, secret))
        assert own.redis.password == own.redis.sentinel_password == secret["REDIS_PASSWORD"], workload
        assert own.redis.sentinels and not own.redis_url
    assert load_config(configmap, environ=workload_env("dentalai-api", secret)).redis.password == ""


def test_the_documented_create_command_has_the_templates_keys() -> None:
    """docs/deployment.md and secret.yaml's comment create the Secret with exactly its keys."""
    for path in (DOCS, K8S / "secret.yaml"):
        keys = re.findall(r"--from-literal=([A-Z0-9_]+)=", path.read_text())
        assert sorted(keys) == sorted(TEMPLATE), path.name


# ---- docker compose -----------------------------------------------------------------------------

INTERPOLATION = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
COMPOSE_SECRETS = {
    "REDIS_PASSWORD", "DENTALAI_AUTH__CLIENTS", "DENTALAI_CALLBACKS__SIGNING_SECRETS", "DENTALAI_TOKEN"
}
BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])(.*))?", re.S)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:?err}, ${VAR?err}, ${VAR:-default}, ${VAR-default}, $VAR and $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        if match.group(3):
            return env.get(match.group(3), "")
        var, op, arg = BRACED.fullmatch(match.group(2)).groups()
        colon = ":" in match.group(2)[len(var):len(var) + 1]
        present = var in env and (env[var] != "" or not colon)
        if op == "?" and not present:
            raise KeyError(f"{var}: {arg}")
        if op == "-" and not present:
            return arg
        return env.get(var, "")

    return INTERPOLATION.sub(one, value)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def compose(env: Mapping[str, str]) -> dict[str, Any]:
    return _walk(yaml.safe_load(COMPOSE.read_text()), env)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def _published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> the host address it is published on ('' = every address)."""
    out = {}
    for port in service.get("ports", []):
        parts = str(port).split(":")
        out[int(parts[-1])] = parts[0] if len(parts) == 3 else ""
    return out


def _interpolations(text: str) -> Iterable[str]:
    return (m.group(2) for m in INTERPOLATION.finditer(text) if m.group(2) is not None)


def test_compose_requires_its_secrets_and_ships_none() -> None:
    text = COMPOSE.read_text()
    used = list(_interpolations(text))
    names = {re.match(r"[A-Za-z_][A-Za-z0-9_]*", u).group(0) for u in used}
    assert names == COMPOSE_SECRETS
    # Every one is ${NAME:?message}: no default value, compose stops when it is unset or empty.
    assert all(re.fullmatch(r"[A-Z0-9_]+:\?.+", u, re.S) for u in used), used
    for name in COMPOSE_SECRETS:
        with pytest.raises(KeyError, match=name):
            compose({n: "x" for n in COMPOSE_SECRETS - {name}})


@pytest.fixture
def stack(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, str]]:
    key, digest = _new_key(capsys)
    env = {
        "REDIS_PASSWORD": secrets.token_hex(32),
        "DENTALAI_AUTH__CLIENTS": json.dumps([{"id": "clinic-a", "key_sha256": [digest]}]),
        "DENTALAI_CALLBACKS__SIGNING_SECRETS": json.dumps([whsec()]),
        "DENTALAI_TOKEN": key,
    }
    return compose(env)["services"], env


def test_compose_services_reach_each_other(stack: tuple[dict[str, Any], dict[str, str]]) -> None:
    services, env = stack
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--requirepass") + 1] == env["REDIS_PASSWORD"]
    settings: dict[str, Settings] = {}
    for name, service in services.items():
        command = service.get("command", [])
        if command[:1] != ["dentalai"]:
            continue
        environment = _environment(service)
        assert "DENTALAI_CONFIG" not in environment, name
        settings[name] = load_config(environ=environment)
        if command[1] == "ui":
            continue
        s = settings[name]
        assert s.auth_problem() is None, name
        url = urlsplit(s.redis_url)
        assert (url.hostname, url.port, url.password) == ("redis", 6379, env["REDIS_PASSWORD"]), name
    assert {services[n]["command"][1] for n in settings} == {"grpc", "api", "worker", "dispatcher", "ui"}

    grpc, api, ui = settings["grpc"], settings["api"], settings["ui"]
    # The bridge reaches the gRPC server by its service name (DENTALAI_GRPC_TARGET never did).
    assert api.api.grpc_target == f"grpc:{grpc.grpc.port}"
    assert grpc.grpc.host == "0.0.0.0" and grpc.grpc.port in _published(services["grpc"])
    assert api.api.host == "0.0.0.0" and api.api.port in _published(services["api"])
    # The UI: a client with a configured key, reaching the API by name, published on loopback only.
    assert ui.ui.api_url == f"http://api:{api.api.port}"
    assert ui.ui.host == "0.0.0.0" and _published(services["ui"]) == {ui.ui.port: "127.0.0.1"}
    token = _environment(services["ui"])["DENTALAI_TOKEN"]
    assert key_digest(token) in {d for c in api.auth.clients for d in c.key_sha256}
    assert "DENTALAI_REDIS_URL" not in _environment(services["ui"])  # it needs no Redis password
    # Its callbacks go to the ui service, which the dispatcher's SSRF guard admits by name.
    callback = urlsplit(ui.ui.callback_url)
    assert (callback.hostname, callback.port) == ("ui", ui.ui.port)
    assert "ui" in settings["dispatcher"].ssrf.allow_hosts
    assert settings["dispatcher"].callbacks.signing_secrets  # callbacks are signed


def test_compose_gpu_worker_builds_plans_where_it_reads_models(
    stack: tuple[dict[str, Any], dict[str, str]],
) -> None:
    services, _ = stack
    gpu = services["worker-gpu"]
    # The image's entrypoint reads the single-underscore spelling (engines/docker_entrypoint.sh).
    models_dir = _environment(gpu)["DENTALAI_WORKER_MODELS_DIR"]
    assert any(v.split(":")[1] == models_dir for v in gpu["volumes"])
    assert load_config(environ=_environment(gpu)).worker.models_dir == models_dir
