"""Exported copies of each served segmentation version (ONNX, OpenVINO, TensorRT), made once in
the background and cached on disk; torch serves until the copy is ready, and for good when the
export fails (the reason is logged).

An export lives beside its version: ``<version folder>/exports/<imgsz>[-fp16]/`` for a fine-tuned
version, ``MODEL_DIR/exports/<base version>/<imgsz>[-fp16]/`` for the base model. Deleting a
version deletes its exports. Processes exporting the same version at once each build in their own
scratch folder and the first rename wins.
"""

from __future__ import annotations

import copy
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelstack_backend.errors import ModelLoadError
from labelstack_backend.yolo.model import SegmentationModel
from labelstack_backend.yolo.runtime import EXPORT_FORMATS, Choice
from labelstack_common.contract import Runtime

log = logging.getLogger(__name__)

#: What ultralytics names each export of ``model.pt``; it recognises the runtime by that name.
EXPORT_NAMES: dict[Runtime, str] = {
    Runtime.ONNX: "model.onnx",
    Runtime.OPENVINO: "model_openvino_model",
    Runtime.TENSORRT: "model.engine",
}


@dataclass(frozen=True)
class ExportSpec:
    runtime: Runtime
    imgsz: int
    half: bool
    device: str

    @property
    def leaf(self) -> str:
        return f"{self.imgsz}-fp16" if self.half else str(self.imgsz)


def cached(folder: Path, spec: ExportSpec) -> Path | None:
    """The finished export in ``folder``, or None."""
    path = folder / spec.leaf / EXPORT_NAMES[spec.runtime]
    return path if path.exists() else None


def export(yolo: Any, folder: Path, spec: ExportSpec) -> Path:
    """Export the torch model ``yolo`` (an ultralytics YOLO) into ``folder``; the cached copy
    when there is one. Raises :class:`ModelLoadError` with ultralytics' reason."""
    found = cached(folder, spec)
    if found is not None:
        return found
    import torch
    from ultralytics import YOLO

    target = folder / spec.leaf
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target))
    try:
        # A full-precision copy (ultralytics' own save rounds to fp16), so the export never touches
        # the served model nor writes beside its weights. ultralytics serves a copy of yolo.model,
        # so this one is idle.
        weights = scratch / "model.pt"
        torch.save({**yolo.ckpt, "model": copy.deepcopy(yolo.model).float(), "ema": None}, weights)
        out = YOLO(str(weights), task="segment").export(
            format=EXPORT_FORMATS[spec.runtime],
            imgsz=spec.imgsz,
            half=spec.half,
            device=spec.device,
            dynamic=True,  # one graph for every letterboxed shape and batch size, as torch serves
            simplify=True,
            verbose=False,
        )
        final = target / EXPORT_NAMES[spec.runtime]
        try:
            Path(out).replace(final)
        except OSError:
            if not final.exists():  # not another process's finished export: a real failure
                raise
        return final
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"export to {spec.runtime.value} failed: {type(exc).__name__}: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


Loader = Callable[[Path, SegmentationModel], SegmentationModel]

#: Free space an export needs beside its version (a YOLOv8x-seg export is about 280 MB).
MIN_FREE_BYTES = 512 * 2**20


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk that holds ``folder`` (or its nearest existing parent)."""
    for place in (folder, *folder.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def load_exported(path: Path, like: SegmentationModel) -> SegmentationModel:
    """The exported model, loaded and warmed up the way ``like`` is."""
    model = SegmentationModel.load(
        str(path), like.version, device=like.device, half=like.half, imgsz=like.imgsz
    )
    if path.name.endswith("_openvino_model") and not like.half:
        openvino_full_precision(model, path)
    return model


def openvino_full_precision(model: SegmentationModel, path: Path) -> None:
    """Recompile an OpenVINO model for f32. Its CPU plugin runs bf16 wherever the CPU has it, which
    moves the masks whose logits sit near the threshold (mask IoU 0.93 against torch seen here)."""
    import openvino as ov

    backend = getattr(getattr(model.yolo.predictor, "model", None), "backend", None)
    compile_model = getattr(backend, "compile_model", None)
    if backend is None or compile_model is None:  # another ultralytics: keep its default
        log.warning("could not set OpenVINO's precision for %s; serving at its default", path)
        return
    compile_model.keywords["config"]["INFERENCE_PRECISION_HINT"] = ov.Type.f32
    backend.ov_compiled_model = compile_model(str(next(path.glob("*.xml"))))


class Exports:
    """Exports each model it is given, one at a time on a background thread, then switches the
    model to the export. Torch serves meanwhile; an export or load that fails is logged and the
    model stays on torch."""

    def __init__(
        self, choice: Choice, *, imgsz: int, half: bool, device: str, loader: Loader = load_exported
    ) -> None:
        self.choice = choice
        self.spec = ExportSpec(choice.runtime, imgsz, half, device)
        self.loader = loader
        self.failures: dict[str, str] = {}  # version -> why torch serves it
        self._jobs: queue.Queue[tuple[SegmentationModel, Any, Path]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if choice.reason:
            log.warning("segmentation runtime: torch serves: %s", choice.reason)

    @property
    def enabled(self) -> bool:
        return self.choice.runtime is not Runtime.TORCH

    def schedule(self, model: SegmentationModel, folder: Path) -> None:
        """Export ``model`` into ``folder`` in the background, then serve it from the export."""
        yolo = getattr(model, "yolo", None)  # the torch model, as loaded now
        if not self.enabled or yolo is None:  # nothing to export (a stand-in model)
            return
        free = free_bytes(folder)
        if free is not None and free < MIN_FREE_BYTES:  # a near-full MODEL_DIR is kept for training
            need = MIN_FREE_BYTES // 2**20
            reason = f"{free // 2**20} MiB free under {folder}, below the {need} MiB an export needs"
            self.failures[model.version] = reason
            log.warning("%s: torch serves, not %s: %s", model.version, self.spec.runtime.value, reason)
            return
        self._jobs.put((model, yolo, folder))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="seg-export", daemon=True)
                self._thread.start()

    def wait(self) -> None:
        """Until every scheduled export is done (tests, benchmarks)."""
        self._jobs.join()

    def _work(self) -> None:
        while True:
            model, yolo, folder = self._jobs.get()
            try:
                self.run(model, yolo, folder)
            finally:
                self._jobs.task_done()

    def run(self, model: SegmentationModel, yolo: Any, folder: Path) -> None:
        runtime = self.spec.runtime.value
        started = time.monotonic()
        try:
            path = export(yolo, folder, self.spec)
            exported = self.loader(path, model)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            self.failures[model.version] = reason
            log.error("%s: torch serves, not %s: %s", model.version, runtime, reason)
            return
        model.serve_from(exported, runtime)
        log.info(
            "%s now served by %s (%s) after %.1fs", model.version, runtime, path, time.monotonic() - started
        )
