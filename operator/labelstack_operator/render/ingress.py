"""The one Ingress, to Label Studio; the backends are never exposed."""

from __future__ import annotations

from labelstack_operator.render.context import LABEL_STUDIO, Manifest, Stack, metadata

BODY_SIZE_ANNOTATION = "nginx.ingress.kubernetes.io/proxy-body-size"


def build_ingress(stack: Stack) -> Manifest:
    ingress = stack.spec.ingress
    meta = metadata(stack, stack.label_studio_name, LABEL_STUDIO)
    # Image uploads are large; user annotations (other controllers' limits) win over ours.
    meta["annotations"] = {BODY_SIZE_ANNOTATION: ingress.max_body_size, **ingress.annotations}
    rule: Manifest = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": stack.label_studio_name, "port": {"name": "http"}}},
                }
            ]
        }
    }
    if ingress.host:
        rule = {"host": ingress.host, **rule}
    spec: Manifest = {"rules": [rule]}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        tls: Manifest = {"secretName": ingress.tls_secret_name}
        if ingress.host:
            tls["hosts"] = [ingress.host]
        spec["tls"] = [tls]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}
