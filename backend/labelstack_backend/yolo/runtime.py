"""Which runtime serves the segmentation model: pure choice, from the setting, the device
and which runtime packages this image carries.

``auto`` is ONNX Runtime (else OpenVINO) on CPU, where both beat torch eager and ONNX Runtime
the most (docs/benchmarks.md), and torch on a GPU, where TensorRT is not proven yet. An
explicit runtime this process cannot run gets a reason, and torch serves.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from labelstack_common.contract import Runtime

#: ultralytics' export format for each exported runtime.
EXPORT_FORMATS: dict[Runtime, str] = {
    Runtime.ONNX: "onnx",
    Runtime.OPENVINO: "openvino",
    Runtime.TENSORRT: "engine",
}

#: The packages each exported runtime needs at export and at serving (never auto-installed).
PACKAGES: dict[Runtime, tuple[str, ...]] = {
    Runtime.ONNX: ("onnx", "onnxruntime"),
    Runtime.OPENVINO: ("openvino",),
    Runtime.TENSORRT: ("onnx", "tensorrt"),
}


@dataclass(frozen=True)
class Choice:
    runtime: Runtime  # never AUTO
    reason: str = ""  # why torch serves instead of what was asked; empty when it was asked


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def missing(runtime: Runtime, present: Callable[[str], bool] = installed) -> list[str]:
    return [p for p in PACKAGES.get(runtime, ()) if not present(p)]


def choose(requested: Runtime, device: str, present: Callable[[str], bool] = installed) -> Choice:
    """The runtime that serves on ``device`` (``cpu``, ``cuda:0``...)."""
    on_cpu = device == "cpu"
    if requested is Runtime.TORCH:
        return Choice(Runtime.TORCH)
    if requested is Runtime.AUTO:
        if not on_cpu:
            return Choice(Runtime.TORCH)
        for candidate in (Runtime.ONNX, Runtime.OPENVINO):
            if not missing(candidate, present):
                return Choice(candidate)
        return Choice(Runtime.TORCH, "neither openvino nor onnxruntime is installed")
    if requested is Runtime.TENSORRT and on_cpu:
        return Choice(Runtime.TORCH, "TensorRT needs a CUDA device, and this process runs on cpu")
    lacking = missing(requested, present)
    if lacking:
        return Choice(Runtime.TORCH, f"{requested.value} needs {', '.join(lacking)}, not installed")
    return Choice(requested)
