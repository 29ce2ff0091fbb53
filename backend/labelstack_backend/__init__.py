"""LabelStack data plane: the Label Studio ML backend (YOLOv8-seg and SAM), training and the CLI."""

__version__ = "0.1.0"
