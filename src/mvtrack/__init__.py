"""mvtrack: 4D-consistent, camera-controlled multi-view video generation supervised by multi-view point tracks."""

__version__ = "0.1.0"
