"""A worker process whose pano pipeline kills the process (os._exit) on a poison image (tests only).

    python -m tests.reliability.poison_worker     # settings from DENTALAI_* like `dentalai worker`

PoisonTestPipeline echoes like tests.backbone.echo_worker, except that an image exactly
POISON_WIDTH pixels wide ends the whole process at once, as a segfaulting decoder or a CUDA
abort would. Registered only here, never reachable from production configuration.
"""

from __future__ import annotations

import os

from google.protobuf.message import Message

from dentalai.config import load_config
from dentalai.logs import setup_logging
from dentalai.v1 import task_pb2
from grpc_server import worker
from pipelines import registry
from pipelines.base_pipeline import DecodedImage, StageTimer
from tests.backbone.echo_worker import EchoTestPipeline

POISON_WIDTH = 313


class PoisonTestPipeline(EchoTestPipeline):
    def run(
        self, image: DecodedImage, options: task_pb2.AnalysisOptions, timer: StageTimer | None = None
    ) -> Message:
        if image.width == POISON_WIDTH:
            os._exit(70)  # no cleanup, no ack, no release: like a hard crash
        return super().run(image, options, timer)


def main() -> None:
    settings = load_config()
    setup_logging(settings.log.level, "poison-worker")
    for task_type in ("pano", "ceph"):
        registry.register(task_type, lambda _s, t=task_type: PoisonTestPipeline(t))
    worker.main(settings)


if __name__ == "__main__":
    main()
