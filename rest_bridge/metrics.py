"""Prometheus metrics of the bridge: its own request latency, and the service's state (tasks by
status, queue depth, callback and export attempts and DICOM instances by outcome) read from
GetServiceStatus at scrape time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dentalai.v1 import analysis_service_pb2 as pb

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceStatusCollector(Collector):
    """Yields the last GetServiceStatus answer (set just before each scrape is rendered)."""

    def __init__(self) -> None:
        self.status: pb.GetServiceStatusResponse | None = None

    def collect(self) -> Iterator[Metric]:
        status = self.status
        reachable = GaugeMetricFamily(
            "dentalai_store_reachable", "1 when the gRPC service reached its Redis store"
        )
        reachable.add_metric([], 1.0 if status is not None and status.store_reachable else 0.0)
        yield reachable
        if status is None or not status.store_reachable:
            return
        ready = GaugeMetricFamily("dentalai_ready", "1 when a worker with loaded models was seen recently")
        ready.add_metric([], 1.0 if status.ready else 0.0)
        yield ready
        depth = GaugeMetricFamily("dentalai_queue_depth", "open jobs in the clients' queue streams")
        depth.add_metric([], float(status.queue_depth))
        yield depth
        dead = GaugeMetricFamily("dentalai_dead_letter_depth", "jobs abandoned after repeated crashes")
        dead.add_metric([], float(status.dead_letter_depth))
        yield dead
        tasks = GaugeMetricFamily(
            "dentalai_tasks",
            "tasks by status (QUEUED/RUNNING now; final statuses are totals)",
            labels=["status"],
        )
        for name, count in sorted(status.tasks_by_status.items()):
            tasks.add_metric([name], float(count))
        yield tasks
        yield _by_outcome("dentalai_callback_attempts", "callback delivery attempts by outcome",
                          status.callback_attempts)
        yield _by_outcome("dentalai_export_attempts", "attempts to export DICOM results, by outcome",
                          status.export_attempts)
        yield _by_outcome("dentalai_dicom_instances", "instances the DICOM node received, by outcome",
                          status.dicom_instances)
        workers = GaugeMetricFamily("dentalai_workers", "workers with a live heartbeat")
        workers.add_metric([], float(len(status.workers)))
        yield workers


def _by_outcome(name: str, documentation: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["outcome"])
    for outcome, count in sorted(counts.items()):
        family.add_metric([outcome], float(count))
    return family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "dentalai_http_request_duration_seconds",
            "REST request latency by route template",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.service = ServiceStatusCollector()
        self.registry.register(self.service)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.latency.labels(route, method, str(status)).observe(seconds)

    def render(self, status: pb.GetServiceStatusResponse | None) -> bytes:
        self.service.status = status
        return generate_latest(self.registry)
