"""The fit path: an ultralytics YOLO-seg training run on a dataset folder."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelstack_backend import runtime
from labelstack_backend.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochProgress:
    epoch: int  # 1-based
    epochs: int
    loss: float | None


@dataclass(frozen=True)
class FitResult:
    weights: Path
    epochs: int
    metrics: dict[str, float]


def _total_loss(trainer: Any) -> float | None:
    tloss = getattr(trainer, "tloss", None)
    if tloss is None:
        return None
    try:
        if isinstance(tloss, dict):  # ultralytics 8.4: a running mean per loss name
            value = float(sum(float(v) for v in tloss.values()))
        else:
            value = float(tloss.sum()) if hasattr(tloss, "sum") else float(tloss)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def fit(
    data_yaml: Path,
    base: str,
    *,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    workdir: Path,
    on_epoch: Callable[[EpochProgress], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> FitResult:
    """Train from ``base`` (a .pt to fine-tune, or a model .yaml) and return the best weights."""
    runtime.prepare_ultralytics()
    import torch
    from ultralytics import YOLO

    device = runtime.resolve_device(device)
    if base.endswith((".yaml", ".yml")):
        torch.manual_seed(seed)
    model = YOLO(base, task="segment")

    def report(trainer: Any) -> None:
        progress = EpochProgress(
            epoch=int(trainer.epoch) + 1, epochs=int(trainer.epochs), loss=_total_loss(trainer)
        )
        log.info(
            "epoch %d/%d loss %s",
            progress.epoch,
            progress.epochs,
            f"{progress.loss:.4f}" if progress.loss is not None else "n/a",
        )
        if on_epoch is not None:
            on_epoch(progress)

    model.add_callback("on_train_epoch_end", report)
    args: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": "cpu" if device == "cpu" else device.removeprefix("cuda:"),
        "project": str(workdir),
        "name": "run",
        "exist_ok": True,
        "plots": False,
        "verbose": False,
        "seed": seed,
        "workers": 0 if device == "cpu" else 4,
        "amp": device != "cpu",
    }
    args.update(extra or {})
    try:
        model.train(**args)
    except Exception as exc:
        raise TrainingError(f"ultralytics training failed: {type(exc).__name__}: {exc}") from exc
    trainer: Any = model.trainer
    weights = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    if not weights.is_file():
        raise TrainingError("training finished without writing weights")
    metrics = {k: float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items() if _is_number(v)}
    return FitResult(weights=weights, epochs=int(trainer.epochs), metrics=metrics)


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
