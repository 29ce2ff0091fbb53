"""The ServiceMonitor that has the Prometheus operator scrape every backend of the stack."""

from __future__ import annotations

from labelstack_common import contract
from labelstack_operator.render.context import BACKEND, Manifest, Stack, metadata


def build_service_monitor(stack: Stack) -> Manifest:
    monitor = stack.spec.monitoring.service_monitor
    meta = metadata(stack, f"{stack.name}-backends", BACKEND)
    meta["labels"] = {**monitor.labels, **meta["labels"]}  # ours win: they select the stack's children
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            # Every backend Service of this stack: the selector leaves the backend name out.
            "selector": {"matchLabels": stack.selector(BACKEND)},
            "namespaceSelector": {"matchNames": [stack.namespace]},
            "endpoints": [
                {
                    "port": "http",
                    "path": contract.METRICS_PATH,
                    "scheme": "http",
                    "interval": monitor.interval,
                }
            ],
        },
    }
