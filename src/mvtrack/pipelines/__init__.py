"""Inference pipelines."""

from .multiview import LAYOUTS, MultiViewPipeline, MultiViewPipelineOutput, observed_layout, view_groups

__all__ = ["LAYOUTS", "MultiViewPipeline", "MultiViewPipelineOutput", "observed_layout", "view_groups"]
