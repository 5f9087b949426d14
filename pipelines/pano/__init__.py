"""Panoramic radiograph analysis: tooth outlines with FDI (or Universal) numbers."""

from pipelines.pano.pipeline import PanoConfig, PanoPipeline

__all__ = ["PanoConfig", "PanoPipeline"]
