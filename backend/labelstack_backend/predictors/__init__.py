"""The predictors behind the protocol: segmentation (YOLOv8-seg) and interactive SAM."""
