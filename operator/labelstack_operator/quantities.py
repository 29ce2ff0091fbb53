"""Kubernetes quantities ("500m", "2", "1Gi", "1e3"): their grammar and their value.

The spec validates quantities with :data:`QUANTITY`; drift detection compares
them by value (the API server rewrites them in canonical form), and the
renderers turn a size into the byte count a program reads from its environment.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

# The grammar of resource.Quantity: a decimal number and a binary, decimal or exponent suffix.
QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$"
)

_SUFFIXES = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip


def quantity(value: object) -> Decimal | None:
    """The numeric value of a Kubernetes quantity ("1Gi", "500m", 2), or None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    match = QUANTITY.match(str(value))
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation:
        return None


def to_bytes(value: object) -> int:
    """A size as a whole number of bytes (a fraction of a byte rounds up)."""
    amount = quantity(value)
    if amount is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return math.ceil(amount)
