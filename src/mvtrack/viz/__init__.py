"""Visualisation: track overlays, view grids, camera plots and video files."""

from .cameras import plot_cameras
from .clip import visualize_clip, visualize_shards
from .depth import depth_image
from .tracks import draw_tracks, tile_views, track_colors
from .video import contact_sheet, read_video, to_uint8_frames, upscale_frames, write_gif, write_mp4

__all__ = ["contact_sheet", "depth_image", "plot_cameras", "visualize_clip", "visualize_shards", "draw_tracks", "tile_views",
           "track_colors", "read_video", "to_uint8_frames", "upscale_frames", "write_gif",
           "write_mp4"]
