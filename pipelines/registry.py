"""Which pipeline runs which taskType, and loading them with their models for a worker.

`PIPELINES` is the one table of task types: submission validation, the CLI, the UI and the task
store read it (`TASK_TYPES`); a model's manifest must name the same type, and the Task message
has a result field of that name. Adding a task type is one row here (plus its pipeline package
and its result message in the .proto).

A taskType whose pipeline module fails to import, or whose model directory is missing or does not
load, is *unavailable*: the worker fails its tasks with 12004 and never fakes a result.
Tests add their own pipelines with `register()` in the worker process they start; production
configuration has no way to reach them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dentalai.config import Settings

if TYPE_CHECKING:  # the API side reads TASK_TYPES without importing numpy or engines
    from engines.base import Engine
    from pipelines.base_pipeline import Pipeline

log = logging.getLogger(__name__)

# taskType -> "module:Class"; imported only by a worker that loads it.
PIPELINES: dict[str, str] = {
    "pano": "pipelines.pano:PanoPipeline",
    "ceph": "pipelines.ceph.pipeline:CephPipeline",
}
TASK_TYPES: tuple[str, ...] = tuple(sorted(PIPELINES))

# taskType -> factory(settings) -> Pipeline; replaces the entry of PIPELINES (test hook).
_FACTORIES: dict[str, Callable[[Settings], Pipeline]] = {}


def register(task_type: str, factory: Callable[[Settings], Pipeline]) -> None:
    """Use `factory(settings)` for `task_type` instead of the built-in pipeline (tests only)."""
    _FACTORIES[task_type] = factory


@dataclass
class LoadedPipelines:
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    # taskType -> why it cannot run (logged; the task's 12004 message says so briefly).
    unavailable: dict[str, str] = field(default_factory=dict)

    def _engines(self) -> list[Engine]:
        # Test pipelines may have no engine at all.
        return [e for p in self.pipelines.values() for e in getattr(p, "engines", []) if e is not None]

    @property
    def runtime(self) -> str:
        runtimes = {getattr(e, "runtime", "") for e in self._engines()}
        return ",".join(sorted(r for r in runtimes if r)) or "none"

    @property
    def models(self) -> list[str]:
        out = []
        for pipeline in self.pipelines.values():
            info = pipeline.model_info
            out.append(f"{info.name}@{info.version}")
            out.extend(f"{c.name}@{c.version}" for c in info.components)
        return sorted(out)

    def close(self) -> None:
        for engine in self._engines():
            try:
                engine.close()
            except Exception:  # closing at exit must not hide the real reason for stopping
                log.exception("closing engine failed")


def _load_one(task_type: str, settings: Settings) -> Pipeline:
    if task_type in _FACTORIES:
        return _FACTORIES[task_type](settings)
    from engines.registry import load_engine

    module_name, _, class_name = PIPELINES[task_type].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    worker = settings.worker
    engines: dict[str, Engine] = {}
    try:
        for name in (cls.model_name, *cls.extra_models):
            model_dir = Path(worker.models_dir) / name
            if not (model_dir / "manifest.json").is_file():
                raise FileNotFoundError(f"no model at {model_dir} (manifest.json missing)")
            engine = load_engine(model_dir, worker.engine, worker.ort_intra_threads, worker.ort_precision)
            engines[name] = engine
            if engine.manifest.task_type != task_type:
                raise ValueError(f"{model_dir} is a model for taskType {engine.manifest.task_type!r}")
            engine.warmup()
    except Exception:
        for engine in engines.values():  # the type is unavailable: give back what did load
            engine.close()
        raise
    first = engines.pop(cls.model_name)
    return cls.from_settings(first, settings, extras=engines)


def load_pipelines(settings: Settings, task_types: list[str] | None = None) -> LoadedPipelines:
    """Load (and warm up) the pipeline of every taskType; failures are recorded, not raised."""
    loaded = LoadedPipelines()
    for task_type in task_types or sorted(set(PIPELINES) | set(_FACTORIES)):
        try:
            loaded.pipelines[task_type] = _load_one(task_type, settings)
            log.info("pipeline ready", extra={"taskType": task_type})
        except Exception as exc:  # any import or model problem makes the type unavailable (12004)
            loaded.unavailable[task_type] = f"{type(exc).__name__}: {exc}"
            reason = loaded.unavailable[task_type]
            log.warning("pipeline unavailable: %s", reason, extra={"taskType": task_type})
    return loaded


def load_pipeline(
    task_type: str,
    models_dir: Path | str,
    runtime: str = "onnxruntime",
    threads: int = 1,
    precision: str = "int8",
) -> Pipeline:
    """One task type's pipeline exactly as a worker loads it (every model, warmed), for evaluation,
    benchmarks and tests; raises RuntimeError saying why when it is unavailable."""
    from dentalai.config import load_config

    worker = {"engine": runtime, "ort_intra_threads": threads, "models_dir": str(models_dir),
              "ort_precision": precision}
    loaded = load_pipelines(load_config(environ={}).with_overrides(worker=worker), [task_type])
    if task_type not in loaded.pipelines:
        raise RuntimeError(f"{task_type} pipeline unavailable: {loaded.unavailable.get(task_type)}")
    return loaded.pipelines[task_type]
