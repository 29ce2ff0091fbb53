"""``labelstack-operator``: run the LabelingStack operator (kopf) in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import kopf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="labelstack-operator",
        description="Reconcile LabelingStack resources into a wired Label Studio with ML backends.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="watch this namespace (repeatable); default: $WATCH_NAMESPACE, else all namespaces",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--liveness",
        default=os.environ.get("LABELSTACK_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="liveness endpoint for the pod's probe (empty: none)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def namespaces(args: argparse.Namespace) -> list[str]:
    if args.all_namespaces:
        return []
    if args.namespace:
        return list(args.namespace)
    watch = os.environ.get("WATCH_NAMESPACE", "")
    return [ns.strip() for ns in watch.split(",") if ns.strip()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import labelstack_operator.handlers  # noqa: F401  (registers the handlers)

    watched = namespaces(args)
    # One replica at a time (the Deployment uses Recreate): no peering objects to create or grant.
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not watched,
            namespaces=watched,
            liveness_endpoint=args.liveness or None,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
