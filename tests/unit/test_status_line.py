"""Errors carry their reason in the HTTP status line too (Label Studio only shows that)."""

from __future__ import annotations

from labelstack_backend.server.app import status_line


def test_the_reason_becomes_the_phrase() -> None:
    reason = "the prompt's label 'Hat' is unknown"
    assert status_line(422, reason) == f"422 {reason}"


def test_the_phrase_is_one_printable_ascii_line() -> None:
    line = status_line(400, "bad\r\nHeader: x \u00e9 " + "y" * 300)
    assert "\r" not in line and "\n" not in line and line.isascii()
    assert len(line) <= 204 and line.endswith("...")
    assert status_line(500, "\n") == "500 Error"
