"""Label Studio's SSRF guard, kept on with a narrower ban list.

Label Studio 1.23 refuses any URL (an ML backend, its /webhook, an import URL, an S3 endpoint)
that resolves into one of ``core.utils.io.validate_ip``'s reserved subnets, so backends on
ClusterIPs (or on loopback, for the local stack) are refused unless ``ML_BLOCK_LOCAL_IP`` and
``SSRF_PROTECTION_ENABLED`` are both turned off. Instead, both stay on and only
``USE_DEFAULT_BANNED_SUBNETS`` is off: :func:`banned_subnets` hands Label Studio its own list
minus the ranges the stack's backends live in, so loopback, link-local (cloud metadata) and the
other reserved ranges stay refused by Label Studio itself; on Kubernetes an egress
NetworkPolicy closes the private ranges again, except to the stack's own pods.
"""

from __future__ import annotations

from collections.abc import Iterable

# Label Studio 1.23's default_banned_subnets (core/utils/io.py), in its order.
LABEL_STUDIO_BANNED_SUBNETS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "233.252.0.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "::ffff:0:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:0000::/32",
    "2001:20::/28",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)

# Where Kubernetes puts pods and Services: the ranges the egress NetworkPolicy guards instead.
CLUSTER_PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
LOOPBACK = ("127.0.0.0/8",)


def banned_subnets(allowed: Iterable[str]) -> str:
    """USER_ADDITIONAL_BANNED_SUBNETS: Label Studio's own list without ``allowed``."""
    keep = set(allowed)
    return ",".join(s for s in LABEL_STUDIO_BANNED_SUBNETS if s not in keep)


def label_studio_env(allowed: Iterable[str]) -> dict[str, str]:
    """The SSRF settings for a Label Studio whose backends live in ``allowed``."""
    return {
        "ML_BLOCK_LOCAL_IP": "true",
        "SSRF_PROTECTION_ENABLED": "true",
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "USER_ADDITIONAL_BANNED_SUBNETS": banned_subnets(allowed),
    }
