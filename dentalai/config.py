"""Settings: defaults from config.yaml, then a user YAML, then DENTALAI_<SECTION>__<KEY> env vars.

`load_config()` validates everything once at start; a bad value raises ConfigError with one
readable message (the CLI prints it and exits non-zero).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import unquote, urlsplit

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
    reflection: bool

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
    metrics_enabled: bool


CLIENT_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
# Words that mark a value copied from an example rather than generated (deploy/k8s/secret.yaml).
_PLACEHOLDER_MARKS = ("replace", "changeme", "change-me", "example", "placeholder", "secret-here")
MIN_SECRET_CHARS = 32


def refuse_placeholder(value: str, what: str) -> str:
    """A secret must be generated: at least MIN_SECRET_CHARS characters and no example marker."""
    lowered = value.lower()
    if any(mark in lowered for mark in _PLACEHOLDER_MARKS):
        raise ValueError(f"{what} looks like a placeholder; generate one (see docs/security.md)")
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(f"{what} must have at least {MIN_SECRET_CHARS} characters")
    return value


class ClientSettings(_Section):
    """One caller of the service: its keys (as SHA-256 hex digests only), its share of the queue
    and what its patients' data may show (docs/security.md)."""

    id: str = Field(pattern=CLIENT_ID_PATTERN)
    key_sha256: list[str] = Field(min_length=1)
    queue_share: int = Field(default=1000, gt=0)
    task_types: list[str] = Field(default_factory=list)
    deidentify: bool = True
    pdf_metadata_keys: list[str] = Field(default_factory=list)
    # Export destination (exports.destinations) of its succeeded tasks' DICOM results unless a
    # request names another; "" = none. export_destinations: the others a request may name.
    export_to: str = ""
    export_destinations: list[str] = Field(default_factory=list)

    @field_validator("key_sha256")
    @classmethod
    def _digests(cls, digests: list[str]) -> list[str]:
        out = [d.strip().lower() for d in digests]
        for digest in out:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("each key_sha256 must be a SHA-256 hex digest (64 hex characters)")
        return out


class AuthSettings(_Section):
    # Development only: no keys, every caller is the client OPEN_CLIENT_ID. Refused with clients.
    open: bool
    clients: list[ClientSettings]
    # In open mode, requests whose Host is not one of these are refused (DNS rebinding).
    open_hosts: list[str]

    @model_validator(mode="after")
    def _one_mode(self) -> AuthSettings:
        if self.open and self.clients:
            raise ValueError("auth.open is for development without clients; remove one of them")
        ids = [c.id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client ids must be unique")
        digests = [d for c in self.clients for d in c.key_sha256]
        if len(digests) != len(set(digests)):
            raise ValueError("a key (key_sha256) may belong to one client only")
        return self


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

    @field_validator("signing_secrets")
    @classmethod
    def _generated(cls, secrets: list[str]) -> list[str]:
        return [refuse_placeholder(s, "a signing secret") for s in secrets]

    @field_validator("retry_delays_s")
    @classmethod
    def _non_negative(cls, delays: list[float]) -> list[float]:
        if any(d < 0 for d in delays):
            raise ValueError("delays must be >= 0")
        return delays


DESTINATION_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def _ae_title(value: str, what: str) -> str:
    # PS3.5 AE VR: 1-16 characters of the default repertoire, no backslash or control characters.
    if not 1 <= len(value.strip()) <= 16 or not value.isascii() or "\\" in value or not value.isprintable():
        raise ValueError(f"{what} must be 1-16 printable ASCII characters without a backslash")
    return value


class ExportDestination(_Section):
    """Where a task's DICOM results go: a C-STORE SCP (`cstore`: ae_title, host, port,
    calling_ae_title) or a DICOMweb server's STOW-RS (`stowrs`: url, the base URL of the service;
    instances are POSTed to {url}/studies)."""

    name: str = Field(pattern=DESTINATION_NAME_PATTERN)
    kind: Literal["cstore", "stowrs"]
    ae_title: str = ""
    host: str = ""
    port: int = Field(default=104, ge=1, le=65535)
    calling_ae_title: str = "DENTALAI"
    url: str = ""
    # Name of an environment variable holding the Authorization header value for STOW-RS (e.g.
    # "Bearer ..."): the secret stays out of the configuration file.
    auth_header_env: str = ""

    @model_validator(mode="after")
    def _complete(self) -> ExportDestination:
        if self.kind == "cstore":
            _ae_title(self.ae_title, "ae_title")
            _ae_title(self.calling_ae_title, "calling_ae_title")
            if not self.host:
                raise ValueError("a cstore destination needs a host")
        else:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("a stowrs destination needs an http(s) url with a host")
        return self


class ExportsSettings(_Section):
    destinations: list[ExportDestination]
    connect_timeout_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)
    concurrency: int = Field(ge=1)
    lease_s: float = Field(gt=0)

    @field_validator("destinations")
    @classmethod
    def _unique(cls, destinations: list[ExportDestination]) -> list[ExportDestination]:
        names = [d.name for d in destinations]
        if len(names) != len(set(names)):
            raise ValueError("destination names must be unique")
        return destinations

    def destination(self, name: str) -> ExportDestination | None:
        return next((d for d in self.destinations if d.name == name), None)


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


class RedisSettings(_Section):
    """Redis behind Sentinel (`sentinels` non-empty; then `redis_url` stays empty) and the
    durability of an acceptance (docs/deployment.md#redis-with-sentinel)."""

    sentinels: list[str]  # "host:port" of each Sentinel; empty = redis_url
    master_name: str = Field(min_length=1)
    password: str  # the data nodes' requirepass (Sentinel mode; a redis_url carries its own)
    sentinel_password: str  # the Sentinels' requirepass; "" = none
    db: int = Field(ge=0)
    # A submission answers 202 (and a callback or export goes out) only once this many replicas
    # hold it (WAIT after the script that writes it); 0 = as soon as the primary has it.
    # wait_timeout_ms bounds that wait (10008 after it for a submission).
    wait_replicas: int = Field(ge=0)
    wait_timeout_ms: int = Field(ge=1, le=5000)  # le: below every client's socket timeout

    @field_validator("sentinels")
    @classmethod
    def _addresses(cls, sentinels: list[str]) -> list[str]:
        for address in sentinels:
            sentinel_address(address)  # ValueError names the bad one
        return sentinels

    @field_validator("password", "sentinel_password")
    @classmethod
    def _generated(cls, password: str) -> str:
        return refuse_placeholder(password, "a Redis password") if password else password


def sentinel_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"sentinel address {address!r} is not host:port")
    return host, int(port)


class DicomCaller(_Section):
    """A calling AE title the DICOM node accepts and the client (auth.clients) its instances
    belong to: that client's queue share, task types and de-identification apply as for REST."""

    ae_title: str
    client: str = Field(pattern=CLIENT_ID_PATTERN)

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _ae_title(value, "ae_title").strip()


class DicomRule(_Section):
    """A routing rule of the DICOM node (dicom_node/routing.py). An instance matches when, for every
    entry of `match`, its tag (a DICOM keyword) has a value matching one of the patterns, and no
    entry of `exclude` matches. A pattern is exact or a glob (`*CEPH*`), or `re:` and a regular
    expression matching the whole value; all case-insensitive. The first matching rule makes a
    task of `task_type` with `options` (AnalysisOptions in REST names: {toothNumbering: UNIVERSAL})."""

    name: str = Field(pattern=CLIENT_ID_PATTERN)
    match: dict[str, list[str]] = Field(min_length=1)
    exclude: dict[str, list[str]] = Field(default_factory=dict)
    task_type: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("match", "exclude", mode="before")
    @classmethod
    def _as_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):  # one pattern may be written without its list
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("match", "exclude")
    @classmethod
    def _patterns(cls, entries: dict[str, list[str]]) -> dict[str, list[str]]:
        for keyword, patterns in entries.items():
            if not keyword.isidentifier() or not patterns:
                raise ValueError(f"{keyword!r}: a DICOM keyword with at least one pattern")
            for pattern in patterns:
                if pattern.startswith("re:"):
                    try:
                        re.compile(pattern[3:])
                    except re.error as exc:
                        raise ValueError(f"{keyword}: bad regular expression {pattern!r}: {exc}") from None
        return entries


_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class DicomSettings(_Section):
    """The DICOM node (`dentalai dicom`, docs/dicom.md): a Storage SCP for the calling AE titles of
    `callers`, routing each instance by `rules` to a task of the caller's client. Tag keywords,
    task types and options of the rules are checked when that process starts."""

    enabled: bool
    ae_title: str
    host: str
    port: int = Field(ge=0, le=65535)
    callers: list[DicomCaller]
    rules: list[DicomRule]
    sop_classes: list[str] = Field(min_length=1)
    transfer_syntaxes: list[str] = Field(min_length=1)
    maximum_associations: int = Field(ge=1)
    maximum_pdu_size: int = Field(ge=4096, le=2**26)
    acse_timeout_s: float = Field(gt=0)
    dimse_timeout_s: float = Field(gt=0)
    network_timeout_s: float = Field(gt=0)
    store_timeout_s: float = Field(gt=0)

    @field_validator("ae_title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _ae_title(value, "ae_title").strip()

    @field_validator("sop_classes", "transfer_syntaxes")
    @classmethod
    def _uids(cls, uids: list[str]) -> list[str]:
        for uid in uids:
            if len(uid) > 64 or not _UID.fullmatch(uid):
                raise ValueError(f"{uid!r} is not a UID")
        return uids

    @model_validator(mode="after")
    def _unique(self) -> DicomSettings:
        titles = [c.ae_title for c in self.callers]
        if len(titles) != len(set(titles)):
            raise ValueError("each calling AE title may be listed once (callers)")
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        return self


# The one client of the open development mode (auth.open): every caller is it.
OPEN_CLIENT_ID = "dev"
OPEN_CLIENT = ClientSettings(id=OPEN_CLIENT_ID, key_sha256=["0" * 64], deidentify=True)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(_Section):
    redis_url: str
    redis: RedisSettings
    key_prefix: str
    grpc: GrpcSettings
    api: ApiSettings
    auth: AuthSettings
    limits: LimitsSettings
    tasks: TasksSettings
    worker: WorkerSettings
    fetch: FetchSettings
    callbacks: CallbacksSettings
    exports: ExportsSettings
    ssrf: SsrfSettings
    ceph: CephSettings
    artifacts: ArtifactsSettings
    ui: UiSettings
    dicom: DicomSettings
    log: LogSettings

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str) -> str:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty)")
        password = urlsplit(url).password if url else None
        if password:
            refuse_placeholder(unquote(password), "the Redis password")
        return url

    @model_validator(mode="after")
    def _one_redis(self) -> Settings:
        if self.redis_url and self.redis.sentinels:
            raise ValueError("set either redis_url or redis.sentinels, not both")
        if self.redis.password and not self.redis.sentinels:
            raise ValueError("redis.password is for Sentinel mode; a redis_url carries its own password")
        return self

    @model_validator(mode="after")
    def _client_destinations(self) -> Settings:
        names = {d.name for d in self.exports.destinations}
        for client in self.auth.clients:
            for name in filter(None, [client.export_to, *client.export_destinations]):
                if name not in names:
                    raise ValueError(
                        f"client {client.id}: export destination {name!r} is not in exports.destinations"
                    )
        return self

    @model_validator(mode="after")
    def _dicom_callers(self) -> Settings:
        clients = {c.id for c in self.auth.clients} | ({OPEN_CLIENT_ID} if self.auth.open else set())
        for caller in self.dicom.callers:
            if caller.client not in clients:
                raise ValueError(
                    f"dicom.callers: AE title {caller.ae_title!r} is mapped to client {caller.client!r}, "
                    "which is not in auth.clients"
                )
        return self

    def auth_problem(self) -> str | None:
        """Why the service must not start as configured: secure by default, so with no client
        configured it serves only in the explicit open development mode."""
        if not self.auth.clients and not self.auth.open:
            return (
                "no clients configured (auth.clients) and auth.open is false: configure a client "
                "(docs/security.md) or, for development only, set DENTALAI_AUTH__OPEN=true"
            )
        return None

    def client(self, client_id: str) -> ClientSettings:
        """The configured client of that id; in open mode the one open client."""
        for client in self.auth.clients:
            if client.id == client_id:
                return client
        if self.auth.open and client_id == OPEN_CLIENT_ID:
            return OPEN_CLIENT
        raise KeyError(client_id)

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
