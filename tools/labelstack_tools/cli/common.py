"""Options and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from labelstack_backend.settings import Settings
from labelstack_common.contract import Env
from labelstack_common.errors import LabelStackError
from labelstack_common.labelstudio import LabelStudioClient

console = Console(stderr=True, highlight=False, soft_wrap=True)
# What a command answers (``status``) goes to stdout, so that it pipes into grep.
answer = Console(highlight=False, soft_wrap=True)
# How the README and the banners write a command: the repository root's wrapper.
COMMAND = "./labelstack"


class CommandError(LabelStackError):
    """A user-facing failure: printed as one line with its fix, exit code 1."""


def add_label_studio_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Label Studio")
    group.add_argument(
        "--url",
        default=os.environ.get("LABEL_STUDIO_URL", ""),
        help="Label Studio URL (default: $LABEL_STUDIO_URL)",
    )
    group.add_argument(
        "--token",
        default=os.environ.get("LABEL_STUDIO_API_KEY", ""),
        help="API token, legacy or personal access token (default: $LABEL_STUDIO_API_KEY)",
    )
    group.add_argument("--project", required=True, help="project id, or its exact title")


DEFAULT_BACKEND = "http://127.0.0.1:9090"  # the local stack's segmentation backend


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Where the segmentation backend answers, and its basic auth (as the backend reads them)."""
    group = parser.add_argument_group("backend")
    group.add_argument(
        "--backend",
        default=os.environ.get("LABELSTACK_BACKEND_URL", DEFAULT_BACKEND),
        help=f"the segmentation backend's URL (default: $LABELSTACK_BACKEND_URL or {DEFAULT_BACKEND})",
    )
    group.add_argument(
        "--user",
        default=os.environ.get(Env.BASIC_AUTH_USER, ""),
        help="basic auth (default: $BASIC_AUTH_USER)",
    )
    group.add_argument(
        "--password",
        default=os.environ.get(Env.BASIC_AUTH_PASS, ""),
        help="basic auth (default: $BASIC_AUTH_PASS)",
    )


def call_backend(
    args: argparse.Namespace, method: str, path: str, *, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One call to the backend's API (``body`` is the query of a GET, the JSON of the rest): its
    JSON answer, or a :class:`CommandError` with the backend's reason."""
    url = args.backend.rstrip("/") + path
    auth = (args.user, args.password) if args.user else None
    query, payload = (body, None) if method == "GET" else (None, body)
    try:
        resp = requests.request(method, url, params=query, json=payload, auth=auth, timeout=30)
    except requests.RequestException as exc:
        raise CommandError(
            f"the backend does not answer at {args.backend}: {type(exc).__name__} (pass --backend)"
        ) from None
    try:
        data: dict[str, Any] = resp.json()
    except ValueError:
        data = {"error": resp.text[:200]}
    if resp.status_code >= 400:
        raise CommandError(f"the backend answered {resp.status_code}: {data.get('error') or data}")
    return data


def label_studio(args: argparse.Namespace) -> LabelStudioClient:
    if not args.url or not args.token:
        raise CommandError(
            "no Label Studio URL or token: pass --url and --token, or set LABEL_STUDIO_URL and "
            "LABEL_STUDIO_API_KEY"
        )
    return LabelStudioClient(args.url, args.token, timeout=60)


def resolve_project(ls: LabelStudioClient, project: str) -> int:
    """A project id from an id or an exact title."""
    if project.isdigit():
        return int(project)
    matches = [p for p in ls.call("list projects", ls.sdk.projects.list) if p.title == project]
    if not matches:
        raise CommandError(f"no project titled {project!r}")
    if len(matches) > 1:
        raise CommandError(f"{len(matches)} projects are titled {project!r}; pass the id instead")
    return int(matches[0].id)


def settings() -> Settings:
    """The backend's settings from the environment. A command run by hand caches fetched images
    in the user's cache folder, not under ./models of wherever it was run, unless told where,
    and reads local files wherever its user can (a server confines them; /proc, /sys and /dev
    stay refused)."""
    env = dict(os.environ)
    env.setdefault(Env.LOCAL_ROOTS, "/")
    if not env.get(Env.MODEL_DIR) and not env.get(Env.IMAGE_CACHE_DIR):
        cache_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        env[Env.IMAGE_CACHE_DIR] = str(cache_home / "labelstack" / "images")
    return Settings.from_env(env)
