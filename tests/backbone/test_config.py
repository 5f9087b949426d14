"""Configuration: defaults, YAML file, env overrides, one clear error and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dentalai.config import DEFAULTS_PATH, ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_documented_values() -> None:
    s = load_config(environ={})
    assert (s.redis_url, s.key_prefix, s.grpc.port, s.api.port) == ("", "dentalai:", 50051, 8000)
    assert s.callbacks.retry_delays_s == [5, 30, 120, 600, 1800]
    assert s.limits.max_image_bytes == 20 * 1024 * 1024 and s.tasks.result_ttl_s == 7 * 24 * 3600


def test_every_default_is_documented_in_docs() -> None:
    text = (REPO / "docs/config.md").read_text()
    defaults = yaml.safe_load(DEFAULTS_PATH.read_text())
    for key, value in defaults.items():
        names = [f"{key}.{sub}" for sub in value] if isinstance(value, dict) else [key]
        for name in names:
            assert f"`{name}`" in text, f"{name} missing from docs/config.md"


def test_file_then_env_override(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("grpc: {port: 6000}\ntasks: {max_deliveries: 5}\n")
    env = {
        "DENTALAI_TASKS__MAX_DELIVERIES": "7",
        "DENTALAI_CALLBACKS__RETRY_DELAYS_S": "[0.2, 0.2]",
        "DENTALAI_WORKER_ENGINE": "onnxruntime",  # single-underscore spelling of docker-compose
        "DENTALAI_TOKEN": "belongs to the CLI, ignored",
        "DENTALAI_KEY_PREFIX": "x:",
    }
    s = load_config(str(path), environ=env)
    assert (s.grpc.port, s.tasks.max_deliveries, s.worker.engine) == (6000, 7, "onnxruntime")
    assert s.callbacks.retry_delays_s == [0.2, 0.2] and s.key_prefix == "x:"
    assert load_config(environ={"DENTALAI_CONFIG": str(path)}).grpc.port == 6000


@pytest.mark.parametrize(
    "env",
    [
        {"DENTALAI_GRPC__PORT": "not-a-port"},
        {"DENTALAI_TASKS__MAX_DELIVERIES": "0"},
        {"DENTALAI_WORKER__ENGINE": "cuda"},
        {"DENTALAI_GRPC__NO_SUCH_KEY": "1"},
        {"DENTALAI_SSRF__ALLOW_CIDRS": "[not-a-network]"},
        {"DENTALAI_REDIS_URL": "http://wrong"},
    ],
)
def test_bad_values_raise_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(environ=env)


def test_cli_exits_2_with_one_message() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "DENTALAI_TASKS__MAX_DELIVERIES": "-1"}
    done = subprocess.run(
        [sys.executable, "-m", "dentalai.cli", "worker"], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "tasks.max_deliveries" in done.stderr


def test_path_and_url_keys_stay_strings_from_the_environment() -> None:
    # YAML would read these values as a number and a mapping; the keys are strings.
    s = load_config(environ={"DENTALAI_API__GRPC_TLS_CA": "2024", "DENTALAI_UI__CALLBACK_URL": "a: b"})
    assert s.api.grpc_tls_ca == "2024" and s.ui.callback_url == "a: b"


def test_every_string_key_stays_a_string_from_the_environment() -> None:
    # Derived from the typed fields: a new string key cannot be forgotten (the last config bug).
    from dentalai.config import _SECTIONS, Settings, _env_overrides, _is_plain_str

    paths = [(name,) for name, f in Settings.model_fields.items() if _is_plain_str(f.annotation)]
    paths += [
        (section, name)
        for section, model in _SECTIONS.items()
        for name, f in model.model_fields.items()
        if _is_plain_str(f.annotation)
    ]
    assert {("api", "grpc_tls_ca"), ("redis_url",), ("ui", "callback_url"), ("grpc", "host")} <= set(paths)
    for path in paths:
        node = _env_overrides({"DENTALAI_" + "__".join(path).upper(): "2024"})
        for part in path:
            node = node[part]
        assert node == "2024", path  # YAML would have made it the number 2024
    assert _env_overrides({"DENTALAI_API__PORT": "2024"}) == {"api": {"port": 2024}}
