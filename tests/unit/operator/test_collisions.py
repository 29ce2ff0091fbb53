"""Child names two stacks would share: the older stack keeps them, an invalid stack claims none."""

from __future__ import annotations

from labelstack_operator.collisions import Claim, claim_of, collisions, describe
from tests.support import stacks


def body(name: str, created: str, spec: dict) -> dict:
    out = stacks.stack_body(name, "ns", spec)
    out["metadata"].update(uid=f"uid-{name}", creationTimestamp=created)
    return out


def backend(name: str) -> dict:
    return {"backends": [{"name": name, "type": "sam", "weights": {"demo": True}}]}


def test_dashes_in_both_names_make_the_same_child_name_and_the_older_stack_keeps_it():
    a = claim_of(body("a", "2026-01-01T00:00:00Z", backend("b-seg")))
    ab = claim_of(body("a-b", "2026-01-02T00:00:00Z", backend("seg")))
    assert a is not None and ab is not None
    assert collisions(a, [a, ab]) == []
    found = collisions(ab, [a, ab])
    assert [key for key, _ in found] == [("Deployment", "a-b-seg"), ("Service", "a-b-seg")]
    assert describe(found).startswith("Deployment a-b-seg, Service a-b-seg are children of LabelingStack a")


def test_stacks_created_in_the_same_second_are_ordered_by_name():
    a = Claim("a", "1", "2026-01-01T00:00:00Z", frozenset({("Service", "x")}))
    b = Claim("b", "2", "2026-01-01T00:00:00Z", frozenset({("Service", "x")}))
    assert collisions(a, [b]) == [] and len(collisions(b, [a])) == 1


def test_an_invalid_stack_claims_nothing():
    assert claim_of(body("a", "2026-01-01T00:00:00Z", {"backends": [{"name": "x"}]})) is None
    assert claim_of(body("A", "2026-01-01T00:00:00Z", {})) is None
