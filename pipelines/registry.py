"""Which pipeline runs which taskType, and loading them with their models for a worker.

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
from typing import Any

from dentalai.config import Settings
from pipelines.base_pipeline import Pipeline

log = logging.getLogger(__name__)

# taskType -> "module:Class"; imported only by a worker that loads it.
PIPELINES: dict[str, str] = {
    "pano": "pipelines.pano:PanoPipeline",
    "ceph": "pipelines.ceph.pipeline:CephPipeline",
}

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

    @property
    def runtime(self) -> str:
        runtimes = {getattr(getattr(p, "engine", None), "runtime", "") for p in self.pipelines.values()}
        return ",".join(sorted(r for r in runtimes if r)) or "none"

    @property
    def models(self) -> list[str]:
        out = []
        for pipeline in self.pipelines.values():
            info = pipeline.model_info
            out.append(f"{info.name}@{info.version}")
        return sorted(out)

    def close(self) -> None:
        for pipeline in self.pipelines.values():
            engine = getattr(pipeline, "engine", None)
            if engine is not None:
                try:
                    engine.close()
                except Exception:  # closing at exit must not hide the real reason for stopping
                    log.exception("closing engine failed")


def _pipeline_kwargs(task_type: str, settings: Settings) -> dict[str, Any]:
    if task_type == "ceph":
        from pipelines.ceph.pipeline import CephConfig

        return {"config": CephConfig(default_spacing_mm=settings.ceph.default_pixel_spacing_mm)}
    return {}


def _load_one(task_type: str, settings: Settings) -> Pipeline:
    if task_type in _FACTORIES:
        return _FACTORIES[task_type](settings)
    from engines.registry import load_engine

    module_name, _, class_name = PIPELINES[task_type].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    model_dir = Path(settings.worker.models_dir) / cls.model_name
    if not (model_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"no model at {model_dir} (manifest.json missing)")
    worker = settings.worker
    engine = load_engine(model_dir, runtime=worker.engine, ort_intra_threads=worker.ort_intra_threads)
    engine.warmup()
    return cls(engine, **_pipeline_kwargs(task_type, settings))


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
