"""Inference pipelines."""

from .multiview import LAYOUTS, MultiViewPipeline, MultiViewPipelineOutput, observed_layout

__all__ = ["LAYOUTS", "MultiViewPipeline", "MultiViewPipelineOutput", "observed_layout"]
