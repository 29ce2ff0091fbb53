"""Label Studio's egress NetworkPolicy: what its SSRF guard lets through, the network closes again.

Label Studio must reach the backends on their ClusterIPs, so its guard lets the private ranges
through (labelstack_common.ssrf). This policy allows only: the stack's own backends and
embedded database, DNS,
``allowCidrs``, and public addresses (cloud storage); the rest of ``privateCidrs`` (other pods,
other Services' endpoints, nodes) is refused. Policies see the pod behind a Service, so a
ClusterIP is judged by the pod it leads to.
"""

from __future__ import annotations

import ipaddress

from labelstack_operator import constants as c
from labelstack_operator.render import postgres
from labelstack_operator.render.context import BACKEND, LABEL_STUDIO, POSTGRES, Manifest, Stack, metadata

DNS_PORT = 53


def _public(private: list[str], version: int) -> Manifest:
    everything = "0.0.0.0/0" if version == 4 else "::/0"
    closed = [cidr for cidr in private if ipaddress.ip_network(cidr, strict=False).version == version]
    block: Manifest = {"cidr": everything}
    if closed:
        block["except"] = closed
    return {"to": [{"ipBlock": block}]}


def build_label_studio_egress_policy(stack: Stack) -> Manifest:
    egress = stack.spec.label_studio.egress
    rules: list[Manifest] = [
        {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]},
    ]
    if stack.spec.backends:
        rules.append(
            {
                "to": [{"podSelector": {"matchLabels": stack.selector(BACKEND)}}],
                "ports": [{"protocol": "TCP", "port": c.BACKEND_PORT}],
            }
        )
    if stack.spec.label_studio.database.type == "embedded":
        rules.append(
            {
                "to": [{"podSelector": {"matchLabels": stack.selector(POSTGRES)}}],
                "ports": [{"protocol": "TCP", "port": postgres.PORT}],
            }
        )
    if egress.allow_cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.allow_cidrs]})
    rules += [_public(egress.private_cidrs, 4), _public(egress.private_cidrs, 6)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(stack, f"{stack.name}-label-studio-egress", LABEL_STUDIO),
        "spec": {
            "podSelector": {"matchLabels": stack.selector(LABEL_STUDIO)},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    }
