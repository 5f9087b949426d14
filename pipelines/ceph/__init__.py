"""Lateral cephalogram analysis: 19 ISBI-2015 landmarks, measurements, classes (CONTRACT section 6)."""

from pipelines.ceph.pipeline import CephConfig, CephPipeline

__all__ = ["CephConfig", "CephPipeline"]
