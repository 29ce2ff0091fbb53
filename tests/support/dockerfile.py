"""A small Dockerfile reader for the image tests: instructions, their flags, and the stages."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    text: str  # the rest, continuation lines joined
    flags: dict[str, str] = field(default_factory=dict)  # --from=build, --chown=...
    args: tuple[str, ...] = ()  # exec form (JSON) or shell words, without the flags


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for inst in self.all("ENV"):
            for word in inst.args:
                name, _, value = word.partition("=")
                out[name] = value
        return out


_FLAG = re.compile(r"^--([a-z-]+)(?:=(\S*))?$")


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments (and parser directives) may sit inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current.strip():
        lines.append(current)
    return lines


def _split(keyword: str, rest: str) -> tuple[dict[str, str], tuple[str, ...]]:
    flags: dict[str, str] = {}
    if rest.startswith("["):
        return flags, tuple(json.loads(rest))
    words = shlex.split(rest, posix=True) if keyword not in ("RUN",) else rest.split()
    args = []
    for word in words:
        match = _FLAG.match(word)
        if match and not args and keyword in ("COPY", "ADD", "FROM", "RUN", "HEALTHCHECK"):
            flags[match.group(1)] = match.group(2) or ""
            continue
        args.append(word)
    if keyword == "HEALTHCHECK" and args and args[0] == "CMD":
        tail = rest[rest.index("CMD") + 3 :].strip()
        return flags, ("CMD", *(json.loads(tail) if tail.startswith("[") else shlex.split(tail)))
    return flags, tuple(args)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages in order)."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        flags, args = _split(keyword, rest)
        inst = Instruction(keyword, rest, flags, args)
        if keyword == "FROM":
            base, name = args[0], None
            if len(args) == 3 and args[1].upper() == "AS":
                name = args[2]
            stages.append(Stage(base, name, [inst]))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            global_args[key] = value.strip('"')
        else:
            stages[-1].instructions.append(inst)
    return global_args, stages


def expand(value: str, variables: dict[str, str]) -> str:
    """${NAME} and $NAME, from ARG defaults."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), value)
