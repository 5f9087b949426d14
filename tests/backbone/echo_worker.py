"""A real worker process with EchoTestPipeline registered (tests only; never in production config).

    python -m tests.backbone.echo_worker        # settings from DENTALAI_* like `dentalai worker`

ECHO_TEST_TYPES: comma-separated taskTypes to register (default "pano,ceph"); the others load the
real pipelines from worker.models_dir (so an empty models_dir gives 12004).
ECHO_TEST_SLEEP_S: seconds each run sleeps (to kill a worker mid-task or hit the time limit).
"""

from __future__ import annotations

import os
import time

from google.protobuf.message import Message

from dentalai.config import Settings, load_config
from dentalai.logs import setup_logging
from dentalai.v1 import results_pb2, task_pb2
from grpc_server import worker
from pipelines import registry
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer


class EchoTestPipeline(Pipeline):
    """Echoes the image size as a result; never reachable from production configuration."""

    model_name = "echo-test"

    def __init__(self, task_type: str) -> None:
        self.task_type = task_type  # type: ignore[misc]
        self.engine = None  # type: ignore[assignment]

    @property
    def model_info(self) -> results_pb2.ModelInfo:
        return results_pb2.ModelInfo(name="echo-test", version="0")

    def run(
        self, image: DecodedImage, options: task_pb2.AnalysisOptions, timer: StageTimer | None = None
    ) -> Message:
        time.sleep(float(os.environ.get("ECHO_TEST_SLEEP_S", "0")))
        if self.task_type == "pano":
            return results_pb2.PanoResult(image=results_pb2.PanoImage(width=image.width, height=image.height))
        spacing = image.pixel_spacing_mm or 0.1
        return results_pb2.CephResult(
            image=results_pb2.CephImage(width=image.width, height=image.height, pixel_spacing_mm=spacing)
        )


def main() -> None:
    settings: Settings = load_config()
    setup_logging(settings.log.level, "echo-worker")
    for task_type in filter(None, os.environ.get("ECHO_TEST_TYPES", "pano,ceph").split(",")):
        registry.register(task_type, lambda _s, t=task_type: EchoTestPipeline(t))
    worker.main(settings)


if __name__ == "__main__":
    main()
