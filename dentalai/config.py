"""Settings: defaults from config.yaml, then a user YAML, then DENTALAI_<SECTION>__<KEY> env vars.

`load_config()` validates everything once at start; a bad value raises ConfigError with one
readable message (the CLI prints it and exits non-zero).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULTS_PATH = Path(__file__).with_name("config.yaml")
ENV_PREFIX = "DENTALAI_"


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrpcSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    tls_cert: str
    tls_key: str

    @model_validator(mode="after")
    def _tls_pair(self) -> GrpcSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        return self


class ApiSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    grpc_target: str = Field(min_length=1)
    grpc_tls: bool
    grpc_tls_ca: str
    max_body_bytes: int = Field(gt=0)
    request_timeout_s: float = Field(gt=0)


class AuthSettings(_Section):
    tokens: list[str]

    @field_validator("tokens")
    @classmethod
    def _non_empty(cls, tokens: list[str]) -> list[str]:
        if any(not t.strip() for t in tokens):
            raise ValueError("tokens must not be empty strings")
        return tokens


class LimitsSettings(_Section):
    max_image_bytes: int = Field(gt=0)
    max_image_pixels: int = Field(gt=0)
    max_decoded_bytes: int = Field(gt=0)
    min_image_side: int = Field(ge=1)
    max_metadata_bytes: int = Field(gt=0)
    max_url_length: int = Field(gt=0)
    queue_max_length: int = Field(gt=0)


class TasksSettings(_Section):
    result_ttl_s: int = Field(gt=0)
    visibility_timeout_s: float = Field(gt=0)
    max_deliveries: int = Field(ge=1)
    task_timeout_s: float = Field(gt=0)
    watch_poll_s: float = Field(gt=0)


class WorkerSettings(_Section):
    engine: Literal["auto", "tensorrt", "onnxruntime"]
    models_dir: str
    ort_intra_threads: int = Field(ge=0)
    ort_precision: Literal["int8", "fp32"]
    heartbeat_interval_s: float = Field(gt=0)
    heartbeat_ttl_s: float = Field(gt=0)
    block_ms: int = Field(ge=1)
    claim_interval_s: float = Field(gt=0)


class FetchSettings(_Section):
    connect_timeout_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)


class CallbacksSettings(_Section):
    connect_timeout_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)
    retry_delays_s: list[float]
    jitter: float = Field(ge=0, lt=1)
    max_retry_after_s: float = Field(ge=0)
    signing_secrets: list[str]
    concurrency: int = Field(ge=1)
    poll_interval_s: float = Field(gt=0)
    lease_s: float = Field(gt=0)

    @field_validator("retry_delays_s")
    @classmethod
    def _non_negative(cls, delays: list[float]) -> list[float]:
        if any(d < 0 for d in delays):
            raise ValueError("delays must be >= 0")
        return delays


class SsrfSettings(_Section):
    allow_hosts: list[str]
    allow_cidrs: list[str]

    @field_validator("allow_cidrs")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
        return cidrs


class CephSettings(_Section):
    default_pixel_spacing_mm: float = Field(gt=0)


class ArtifactsSettings(_Section):
    enabled: bool
    max_side: int = Field(ge=256, le=8192)


class UiSettings(_Section):
    enabled: bool
    host: str
    port: int = Field(ge=0, le=65535)
    backend: Literal["rest", "grpc"]
    callback_url: str
    # Where the UI reaches the service; empty = this installation's api.host:port / grpc.host:port.
    api_url: str = ""
    grpc_target: str = ""


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(_Section):
    redis_url: str
    key_prefix: str
    grpc: GrpcSettings
    api: ApiSettings
    auth: AuthSettings
    limits: LimitsSettings
    tasks: TasksSettings
    worker: WorkerSettings
    fetch: FetchSettings
    callbacks: CallbacksSettings
    ssrf: SsrfSettings
    ceph: CephSettings
    artifacts: ArtifactsSettings
    ui: UiSettings
    log: LogSettings

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty)")
        return url

    def with_overrides(self, **sections: Any) -> Settings:
        """A copy with some values replaced, e.g. `s.with_overrides(tasks={"max_deliveries": 1})`
        (nested dicts merge); validated like a loaded config."""
        return _validate(_merge(self.model_dump(), sections), "overrides")


_SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return data


def _is_plain_str(annotation: Any) -> bool:
    """`str` or `str | None`: a free-form string (a Literal is checked by value anyway)."""
    if annotation is str:
        return True
    args = get_args(annotation)
    return get_origin(annotation) in (Union, UnionType) and str in args and set(args) <= {str, type(None)}


# Every string key, from the typed fields: an environment value for one is taken as written,
# since YAML parsing would turn "2024" into a number or "a: b" into a mapping. Derived, never
# listed by hand (a hand-kept list missed api.grpc_tls_ca).
_STRING_PATHS: frozenset[tuple[str, ...]] = frozenset(
    [(name,) for name, f in Settings.model_fields.items() if _is_plain_str(f.annotation)]
    + [
        (section, name)
        for section, model in _SECTIONS.items()
        for name, f in model.model_fields.items()
        if _is_plain_str(f.annotation)
    ]
)


def _env_path(rest: str) -> list[str] | None:
    """["section", "key"] for SECTION__KEY (strict: unknown keys fail validation), also for the
    single-underscore SECTION_KEY spelling when it names a known key (docker-compose uses it);
    ["key"] for top-level keys; None for anything else."""
    if "__" in rest:
        return rest.split("__")
    if rest in Settings.model_fields and rest not in _SECTIONS:
        return [rest]
    for section, model in _SECTIONS.items():
        if rest.startswith(section + "_") and rest[len(section) + 1:] in model.model_fields:
            return [section, rest[len(section) + 1:]]
    return None


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "DENTALAI_CONFIG":
            continue
        path = _env_path(name[len(ENV_PREFIX):].lower())
        if path is None:
            continue  # another tool's variable (DENTALAI_TOKEN, DENTALAI_UI_...)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment {name}: not valid YAML: {exc}") from exc
        if tuple(path) in _STRING_PATHS:
            value = raw  # strings that YAML might turn into something else
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _validate(data: dict[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({source}): {problems}") from None


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then `path` (or $DENTALAI_CONFIG), then DENTALAI_* env vars; raises ConfigError."""
    env = dict(os.environ if environ is None else environ)
    data = _read_yaml(DEFAULTS_PATH)
    user_path = path or env.get("DENTALAI_CONFIG")
    sources = ["defaults"]
    if user_path:
        data = _merge(data, _read_yaml(Path(user_path)))
        sources.append(str(user_path))
    overrides = _env_overrides(env)
    if overrides:
        data = _merge(data, overrides)
        sources.append("environment")
    return _validate(data, " + ".join(sources))
