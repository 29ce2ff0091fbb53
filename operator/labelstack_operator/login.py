"""Credentials for the Kubernetes API, shared by kopf and the operator's own wrapper (kube.py)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from labelstack_operator.config import OperatorConfig

log = logging.getLogger(__name__)


def login(config: OperatorConfig, **kwargs: Any) -> kopf.ConnectionInfo:
    """In a pod: the service account. Outside: the kubeconfig (exec plugins included, through the
    official client). ``LABELSTACK_KUBE_SERVER`` (development) means: that URL, no credentials."""
    if config.kube_server:
        return kopf.ConnectionInfo(server=config.kube_server, insecure=True, default_namespace="default")
    kwargs.setdefault("logger", log)
    kwargs.setdefault("settings", kopf.OperatorSettings())
    for attempt in (kopf.login_with_service_account, kopf.login_via_client, kopf.login_with_kubeconfig):
        info = attempt(**kwargs)
        if info is not None:
            return info
    raise kopf.LoginError("no service account, kubeconfig or LABELSTACK_KUBE_SERVER to reach Kubernetes")
