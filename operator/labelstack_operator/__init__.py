"""LabelStack control plane: the LabelingStack operator and Label Studio wiring (no torch here)."""

__version__ = "0.1.0"
