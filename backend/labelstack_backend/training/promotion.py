"""Whether a newly trained version serves: ``LABELSTACK_PROMOTE=if-better|always|manual``. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from labelstack_backend.training.validation import Evaluation
from labelstack_common.contract import Env, PromotePolicy

__all__ = ["Decision", "PromotePolicy", "decide", "expired", "rollback_target"]


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    policy: PromotePolicy

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy.value, "promoted": self.promote, "reason": self.reason}


def decide(
    policy: PromotePolicy, candidate: Evaluation, serving: Evaluation, serving_name: str | None
) -> Decision:
    """``serving_name`` is the fine-tuned version serving now (None: the base model serves)."""
    if policy is PromotePolicy.ALWAYS:
        return Decision(True, f"{Env.PROMOTE}=always", policy)
    if policy is PromotePolicy.MANUAL:
        return Decision(False, f"{Env.PROMOTE}=manual: promote it with POST /versions/promote", policy)
    if candidate.scores is None:
        if serving_name is None:
            return Decision(True, f"not validated ({candidate.note}); nothing fine-tuned serves yet", policy)
        return Decision(
            False, f"not validated ({candidate.note}), so not shown better than {serving_name}", policy
        )
    if serving.scores is None:
        what = serving_name or "the base model"
        return Decision(True, f"nothing comparable serves ({what}: {serving.note})", policy)
    new, old = candidate.scores, serving.scores
    versus = (
        f"mask mAP50-95 {new.mask_map50_95:.3f} vs {old.mask_map50_95:.3f}, "
        f"mAP50 {new.mask_map50:.3f} vs {old.mask_map50:.3f} of {serving_name or 'the base model'}"
    )
    if new.key() > old.key():
        return Decision(True, f"better on validation: {versus}", policy)
    return Decision(False, f"not better on validation: {versus}", policy)


def rollback_target(
    history: Sequence[Mapping[str, Any]], current: str | None, existing: Set[str]
) -> str | None:
    """The version that served before ``current`` last became serving, and still exists."""
    names = [str(e.get("version", "")) for e in history]
    since = max((i for i, n in enumerate(names) if n == current), default=len(names))
    for name in reversed(names[:since]):
        if name and name != current and name in existing:
            return name
    return None


def expired(oldest_first: Sequence[str], serving: str | None, keep: int) -> list[str]:
    """Retention: every version but the newest ``keep`` and the serving one."""
    kept = set(oldest_first[-keep:]) if keep > 0 else set()
    return [n for n in oldest_first if n not in kept and n != serving]
