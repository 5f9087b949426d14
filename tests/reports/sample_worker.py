"""A real worker whose pipelines answer the sample results of tests/reports/samples.py (tests only).

    python -m tests.reports.sample_worker     # settings from DENTALAI_* like `dentalai worker`

The results are those of a 1935 x 2400 ceph and a 2943 x 1435 pano, whatever the image; the
tests submit images of those sizes, so the artifacts are made at the real sizes.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.message import Message

from dentalai.config import load_config
from dentalai.logs import setup_logging
from dentalai.v1 import results_pb2, task_pb2
from grpc_server import worker
from pipelines import registry
from pipelines.base_pipeline import DecodedImage, Pipeline, StageTimer
from tests.reports import samples


class SamplePipeline(Pipeline):
    model_name = "sample-test"

    def __init__(self, task_type: str) -> None:
        self.task_type = task_type  # type: ignore[misc]
        self.engine = None  # type: ignore[assignment]

    @property
    def model_info(self) -> results_pb2.ModelInfo:
        return results_pb2.ModelInfo(name=f"sample-{self.task_type}", version="0.0.1")

    def run(
        self, image: DecodedImage, options: task_pb2.AnalysisOptions, timer: StageTimer | None = None
    ) -> Message:
        if self.task_type == "ceph":
            return samples.ceph_result()
        return json_format.ParseDict(samples.pano_result(), results_pb2.PanoResult())


def main() -> None:
    settings = load_config()
    setup_logging(settings.log.level, "sample-worker")
    for task_type in ("ceph", "pano"):
        registry.register(task_type, lambda _s, t=task_type: SamplePipeline(t))
    worker.main(settings)


if __name__ == "__main__":
    main()
