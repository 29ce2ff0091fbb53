"""``labelstack model list|promote|rollback --project P``: which trained version a segmentation
backend serves, with each version's validation scores; a switch reaches every worker and, with
Redis, every replica (the backend's ``/versions/promote`` and ``/versions/rollback``)."""

from __future__ import annotations

import argparse
from typing import Any

from labelstack_tools.cli.common import add_backend_options, answer, call_backend

HELP = "list a project's trained versions, promote one, or roll back"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help=HELP, description=HELP + ".")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("list", "the versions, their validation scores, and which one serves"),
        ("promote", "serve --version now"),
        ("rollback", "serve the version that served before the current one (or --version)"),
    ):
        a = actions.add_parser(name, help=text, description=text + ".")
        a.add_argument("--project", required=True, help="Label Studio project id")
        if name != "list":
            a.add_argument("--version", required=name == "promote", help="a version name (see `model list`)")
        add_backend_options(a)
        a.set_defaults(run=run)


def score(version: dict[str, Any], target: str, field: str) -> str:
    scores = ((version.get("validation") or {}).get("candidate") or {}).get("scores") or {}
    value = (scores.get(target) or {}).get(field)
    return "-" if value is None else f"{value:.3f}"


def lines(info: dict[str, Any]) -> list[str]:
    """``model list``'s rows: one per version, the serving one marked with ``*``."""
    out = [f"  {'version':<44} {'mask mAP50-95':>13} {'mask mAP50':>10} {'box mAP50-95':>12}  promotion"]
    for v in info.get("details", []):
        decision = v.get("promotion") or {}
        verdict = ("promoted" if decision.get("promoted") else "kept") + f": {decision.get('reason', '')}"
        verdict = verdict if decision else "-"
        out.append(
            f"{'*' if v.get('serving') else ' '} {v['version']:<44} {score(v, 'mask', 'map50_95'):>13} "
            f"{score(v, 'mask', 'map50'):>10} {score(v, 'box', 'map50_95'):>12}  {verdict}"
        )
    out.append(
        f"serving: {info.get('serving') or 'the base model'} (model_version {info.get('model_version')})"
    )
    training = info.get("training") or {}
    if training.get("requeued"):
        out.append(f"training: {training.get('status')}; {training['requeued']}")
    return out


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        info = call_backend(args, "GET", "/versions", body={"project": args.project})
        for line in lines(info):
            answer.print(line, markup=False)
        return 0
    body = {"project": args.project, **({"version": args.version} if args.version else {})}
    done = call_backend(args, "POST", f"/versions/{args.action}", body=body)
    was = done.get("was") or "the base model"
    answer.print(f"project {args.project} serves {done['serving']} (was {was})", markup=False)
    return 0
