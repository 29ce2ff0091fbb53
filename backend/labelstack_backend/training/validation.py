"""The held-out validation split of a project's finished annotations, and what a model scores on it.

Pure: which tasks validate is decided by a hash of the task id alone, so a task stays on the same
side from one training to the next (a version never validates on what an earlier one learnt
from), whatever order Label Studio lists the tasks in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labelstack_backend.formats.yolo import task_bucket


@dataclass(frozen=True)
class Split:
    train: tuple[int, ...]
    val: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"train": len(self.train), "val": len(self.val), "val_tasks": list(self.val)}


def split_tasks(task_ids: Iterable[int], fraction: float, minimum: int) -> Split:
    """Hold out the tasks whose bucket is below ``fraction``, topped up to ``minimum`` with the
    lowest buckets; never more than half of the tasks, so that training keeps the larger part.
    Fewer than two tasks: no split (the caller trains on all and says it could not validate)."""
    ids = sorted(set(task_ids), key=lambda t: (task_bucket(t), t))
    drawn = sum(1 for t in ids if task_bucket(t) < fraction)
    count = min(max(drawn, minimum), len(ids) // 2)
    val = ids[:count]
    chosen = set(val)
    return Split(train=tuple(sorted(t for t in ids if t not in chosen)), val=tuple(sorted(val)))


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0


@dataclass(frozen=True)
class Scores:
    """Mask and box mAP50 and mAP50-95 of one model on one validation split."""

    mask_map50: float
    mask_map50_95: float
    box_map50: float
    box_map50_95: float
    images: int

    def key(self) -> tuple[float, float, float, float]:
        """What "better" compares, in order: masks first (this backend predicts masks)."""
        return (self.mask_map50_95, self.mask_map50, self.box_map50_95, self.box_map50)

    def to_json(self) -> dict[str, Any]:
        return {
            "mask": {"map50": round(self.mask_map50, 5), "map50_95": round(self.mask_map50_95, 5)},
            "box": {"map50": round(self.box_map50, 5), "map50_95": round(self.box_map50_95, 5)},
            "images": self.images,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scores | None:
        if not data:
            return None
        try:
            return cls(
                mask_map50=_finite(data["mask"]["map50"]),
                mask_map50_95=_finite(data["mask"]["map50_95"]),
                box_map50=_finite(data["box"]["map50"]),
                box_map50_95=_finite(data["box"]["map50_95"]),
                images=int(data.get("images", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def summary(self) -> str:
        return (
            f"mask mAP50 {self.mask_map50:.3f} mAP50-95 {self.mask_map50_95:.3f}, "
            f"box mAP50 {self.box_map50:.3f} mAP50-95 {self.box_map50_95:.3f}"
        )


@dataclass(frozen=True)
class Evaluation:
    """A model's scores, or why it has none (no split, other classes, a failed run)."""

    scores: Scores | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scores": self.scores.to_json() if self.scores else None}
        if self.note:
            out["note"] = self.note
        return out
