"""ultralytics YOLO-seg: one loaded model, and which version of it serves each project."""
