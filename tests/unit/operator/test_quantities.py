"""Kubernetes quantities: the value of each form the grammar allows, and sizes in bytes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from labelstack_operator.quantities import quantity, to_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        (2, Decimal(2)),
        ("1Gi", Decimal(2**30)),
        ("1.5Ki", Decimal(1536)),
        ("1e3", Decimal(1000)),
        ("2E-3", Decimal("0.002")),
        ("+1k", Decimal(1000)),
        (".5M", Decimal(500000)),
    ],
)
def test_every_form_of_the_grammar_has_its_value(text, value):
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "1.2.3", "1Gb", "", None, 1.5, True])
def test_what_is_not_a_quantity_has_no_value(text):
    assert quantity(text) is None


@pytest.mark.parametrize(
    ("text", "size"), [("512Mi", 536_870_912), ("1G", 10**9), ("1e3", 1000), ("1500m", 2), ("0", 0)]
)
def test_sizes_in_bytes_round_up(text, size):
    assert to_bytes(text) == size


def test_a_size_that_is_not_a_quantity_is_an_error():
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        to_bytes("big")
