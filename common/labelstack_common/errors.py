"""The root of every error LabelStack raises on purpose.

Each boundary keeps its own error type (``BackendError`` with an HTTP status, ``KubeError``
with the API server's answer, ``LabelStudioError``, the CLI's and the local stack's), and every
one of them is a :class:`LabelStackError`: an edge that catches it reports a message fit for a
person (a 4xx, a status condition, one line on the terminal); anything else is a bug, logged
with its traceback.
"""

from __future__ import annotations


class LabelStackError(Exception):
    """An expected failure; ``str()`` says what went wrong and, where it can, how to fix it."""
