"""Conditions per Kubernetes conventions, and no status write when nothing changed."""

from __future__ import annotations

from labelstack_operator.status import (
    CONDITION_TYPES,
    Check,
    LabelingStackStatus,
    Observed,
    build_status,
    parse_status,
    status_patch,
)

OK = Check("True", "Fine", "all good")


def observed(**changes: object) -> Observed:
    base = {
        "generation": 3,
        "url": "https://label.example.com",
        "label_studio": OK,
        "backends": OK,
        "wired": OK,
        "backends_ready": "2/2",
    }
    base.update(changes)
    return Observed(**base)  # type: ignore[arg-type]


def conditions(status: LabelingStackStatus) -> dict[str, object]:
    return {c.type: c for c in status.conditions}


def test_all_checks_true_make_ready_true_with_conventional_fields():
    status = build_status(LabelingStackStatus(), observed(), timestamp="2026-01-01T00:00:00Z")
    assert [c.type for c in status.conditions] == list(CONDITION_TYPES)
    ready = conditions(status)["Ready"]
    assert ready.status == "True" and ready.reason == "StackReady"
    assert ready.observed_generation == 3 and ready.last_transition_time == "2026-01-01T00:00:00Z"
    assert status.observed_generation == 3 and status.url == "https://label.example.com"
    assert status.backends == "2/2"


def test_ready_names_the_first_thing_in_the_way():
    status = build_status(
        LabelingStackStatus(),
        observed(
            backends=Check("False", "NotReady", "waiting for sam 0/1"), wired=Check("False", "Waiting", "")
        ),
    )
    ready = conditions(status)["Ready"]
    assert ready.status == "False" and ready.reason == "NotReady"
    assert ready.message == "BackendsReady: waiting for sam 0/1"


def test_transition_time_moves_only_when_the_status_flips():
    first = build_status(LabelingStackStatus(), observed(wired=Check("False", "A", "x")), timestamp="T1")
    same = build_status(first, observed(wired=Check("False", "B", "y")), timestamp="T2")
    assert conditions(same)["Wired"].last_transition_time == "T1"
    assert conditions(same)["Wired"].reason == "B"
    flipped = build_status(same, observed(), timestamp="T3")
    assert conditions(flipped)["Wired"].last_transition_time == "T3"


def test_an_unchanged_status_needs_no_patch():
    status = build_status(LabelingStackStatus(), observed(), timestamp="T1")
    stored = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    again = build_status(parse_status(stored), observed(), timestamp="T2")
    assert status_patch(stored, again) is None


def test_a_changed_status_is_a_merge_patch_that_also_clears_dropped_fields():
    first = build_status(LabelingStackStatus(), observed(wiring_hash="abc"), timestamp="T1")
    stored = first.model_dump(by_alias=True, exclude_none=True, mode="json")
    second = build_status(parse_status(stored), observed(wiring_hash=None), timestamp="T2")
    patch = status_patch(stored, second)
    assert patch is not None and patch["wiringHash"] is None


def test_a_blocker_sets_ready_false_and_keeps_what_was_known():
    good = build_status(LabelingStackStatus(), observed(), timestamp="T1")
    blocked = build_status(
        good, Observed(generation=4, blocker=Check("False", "InvalidSpec", "spec.x: bad")), "T2"
    )
    by_type = conditions(blocked)
    assert by_type["Ready"].status == "False" and by_type["Ready"].reason == "InvalidSpec"
    assert by_type["Ready"].message == "spec.x: bad" and by_type["Ready"].observed_generation == 4
    assert by_type["LabelStudioReady"].status == "True"  # not re-observed, kept
    assert blocked.observed_generation == 4 and blocked.url == good.url


def test_garbage_in_the_stored_status_is_replaced_not_fatal():
    assert parse_status({"conditions": "nonsense"}) == LabelingStackStatus()
