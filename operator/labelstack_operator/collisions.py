"""Child names two stacks of one namespace would share: refused before anything is written.

Children are named ``<stack>-<part>`` (kept as they are, so that upgrades find their objects
and their data), and both parts may contain a '-': stack ``a`` with backend ``b-seg`` and stack
``a-b`` with backend ``seg`` both render Service ``a-b-seg``. The stack created first keeps the
name; a later one that would render any child of an older one is refused
(``Ready=False/NameCollision``) before it writes anything. The claims of the other stacks come
from kopf's index of the namespace's stacks (handlers.py), so the check reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labelstack_operator.children import Key, key_of
from labelstack_operator.render import Manifest, Stack, build_children
from labelstack_operator.spec import SpecError, check_stack_name, parse_spec


@dataclass(frozen=True)
class Claim:
    """The child names one stack renders, and when it was created (the older stack wins)."""

    name: str
    uid: str
    created: str
    keys: frozenset[Key]

    @property
    def order(self) -> tuple[str, str]:
        # RFC 3339 timestamps in UTC sort as text; the name breaks ties within a second.
        return (self.created, self.name)


def claim(stack: Stack, created: str, children: Iterable[Manifest] | None = None) -> Claim:
    rendered = build_children(stack) if children is None else children
    return Claim(stack.name, stack.uid, created, frozenset(key_of(obj) for obj in rendered))


# kopf's index calls claim_of on every event of a stack (status writes too), in its event loop:
# render a spec once per generation, not once per event.
_CACHE: dict[tuple[str, object], Claim | None] = {}
_CACHE_SIZE = 4096


def claim_of(body: Mapping[str, Any]) -> Claim | None:
    """A stack's claim, from its body; an invalid stack renders nothing, so it claims nothing."""
    meta = body.get("metadata") or {}
    key = (str(meta.get("uid")), meta.get("generation"))
    if key[1] is not None and key in _CACHE:
        return _CACHE[key]
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    found = _claim_of(meta, body)
    if key[1] is not None:
        _CACHE[key] = found
    return found


def _claim_of(meta: Mapping[str, Any], body: Mapping[str, Any]) -> Claim | None:
    try:
        check_stack_name(meta["name"])
        spec = parse_spec(body.get("spec"))
    except SpecError:
        return None
    stack = Stack(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], spec=spec)
    return claim(stack, str(meta.get("creationTimestamp") or ""))


def collisions(mine: Claim, others: Iterable[Claim]) -> list[tuple[Key, Claim]]:
    """The children ``mine`` would share with older stacks, each with the stack that has it."""
    found: list[tuple[Key, Claim]] = []
    for other in sorted(others, key=lambda o: o.order):
        if other.uid != mine.uid and other.order < mine.order:
            found += [(key, other) for key in sorted(mine.keys & other.keys)]
    return found


def describe(found: Iterable[tuple[Key, Claim]]) -> str:
    by_stack: dict[str, list[str]] = {}
    for (kind, name), other in found:
        by_stack.setdefault(other.name, []).append(f"{kind} {name}")
    parts = "; ".join(
        f"{', '.join(keys)} {'is a child' if len(keys) == 1 else 'are children'} of LabelingStack {stack}"
        for stack, keys in by_stack.items()
    )
    return (
        f"{parts}, created first: rename this stack or the backend behind the name "
        "(children are named <stack>-<part>); nothing was written"
    )
