"""Metadata sidecars for bulk import: CSV or JSON Lines, keyed by file name. Pure.

A sidecar row belongs to the image whose path relative to the source (or whose
bare file name) equals the row's key column (``file``, ``filename``, ``image``,
``path`` or ``name``, unless one is named). Bad rows are reported with their
line numbers and the rest still count.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

KEY_COLUMNS = ("file", "filename", "file_name", "image", "path", "name")


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Metadata:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> fields (without the key column)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line number, for messages
    problems: list[Problem] = field(default_factory=list)


def _key_column(columns: Iterable[str], wanted: str | None) -> str | None:
    cols = list(columns)
    if wanted:
        return wanted if wanted in cols else None
    return next((c for c in KEY_COLUMNS if c in cols), None)


def _add(meta: Metadata, line: int, row: Mapping[str, Any], key_col: str) -> None:
    key = row.get(key_col)
    if not isinstance(key, str) or not key.strip():
        meta.problems.append(Problem(line, f"no file name in column {key_col!r}"))
        return
    key = key.strip().lstrip("/")
    if key in meta.rows:
        meta.problems.append(Problem(line, f"{key} already described on line {meta.lines[key]}; ignored"))
        return
    meta.rows[key] = {k: v for k, v in row.items() if k != key_col and k is not None and v not in (None, "")}
    meta.lines[key] = line


def parse_csv(text: str, key_column: str | None = None) -> Metadata:
    meta = Metadata()
    reader = csv.DictReader(io.StringIO(text))
    key_col = _key_column(reader.fieldnames or [], key_column)
    if key_col is None:
        meta.problems.append(
            Problem(1, f"no key column: name one of {', '.join(KEY_COLUMNS)} or pass --key-column")
        )
        return meta
    for row in reader:
        if None in row:  # more cells than headers
            meta.problems.append(Problem(reader.line_num, "more cells than columns"))
            continue
        _add(meta, reader.line_num, row, key_col)
    return meta


def parse_jsonl(text: str, key_column: str | None = None) -> Metadata:
    meta = Metadata()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            meta.problems.append(Problem(number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(row, dict):
            meta.problems.append(Problem(number, "not a JSON object"))
            continue
        key_col = _key_column(row, key_column)
        if key_col is None:
            meta.problems.append(Problem(number, f"no key field ({', '.join(KEY_COLUMNS)})"))
            continue
        _add(meta, number, row, key_col)
    return meta


def parse(name: str, text: str, key_column: str | None = None) -> Metadata:
    if name.lower().endswith((".jsonl", ".ndjson", ".json")):
        return parse_jsonl(text, key_column)
    return parse_csv(text, key_column)


def match(keys: Iterable[str], meta: Metadata) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Metadata per image key, and a problem for every row that names no image.

    A row matches an image by its relative path, or by bare file name when that
    name is unique in the source.
    """
    keys = list(keys)
    by_name: dict[str, list[str]] = {}
    for k in keys:
        by_name.setdefault(PurePosixPath(k).name, []).append(k)
    found: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    known = set(keys)
    for row_key, fields in meta.rows.items():
        if row_key in known:
            found[row_key] = fields
            continue
        candidates = by_name.get(PurePosixPath(row_key).name, []) if "/" not in row_key else []
        if len(candidates) == 1:
            found[candidates[0]] = fields
        elif len(candidates) > 1:
            problems.append(
                Problem(meta.lines[row_key], f"{row_key} matches {len(candidates)} images; use its path")
            )
        else:
            problems.append(Problem(meta.lines[row_key], f"no image {row_key} in the source"))
    return found, problems
