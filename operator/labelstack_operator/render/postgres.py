"""The embedded PostgreSQL: one pod on its own PVC, a generated password, reachable by Label Studio only.

A one-replica StatefulSet: at most one database pod at a time, even while a node is lost (a
Deployment may start the replacement before the old pod is known to be gone). Its PVC is the
operator's own child (``<stack>-postgres-data``), mounted by name rather than made from a
``volumeClaimTemplates`` entry, so that it follows the retention policy like every other claim
and the stacks an older operator rendered with a Deployment keep their data (the Deployment,
no longer rendered, is pruned).
"""

from __future__ import annotations

from labelstack_operator.render import parts
from labelstack_operator.render.context import BACKUP, LABEL_STUDIO, POSTGRES, Manifest, Stack, metadata

PORT = 5432
# The official image's postgres user.
UID = GID = 999
DATA = "/var/lib/postgresql/data"
RUN = "/var/run/postgresql"
SECRET_POSTGRES_PASSWORD = "password"  # noqa: S105 (a key name)
# Embedded database and role (external ones come from the spec).
NAME = USER = "labelstudio"


# Run by an init container of every Label Studio pod: the first takes the lock and migrates, the
# others wait for it and then find nothing to do, so replicas never migrate at the same time.
MIGRATE_LOCK = 1414
MIGRATE_SCRIPT = f"""
import os, sys, time
import label_studio
import psycopg
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
env = os.environ
with psycopg.connect(host=env["POSTGRE_HOST"], port=env["POSTGRE_PORT"], dbname=env["POSTGRE_NAME"],
                     user=env["POSTGRE_USER"], password=env["POSTGRE_PASSWORD"], autocommit=True) as lock:
    # Polled, not waited on: a session blocked in pg_advisory_lock would hold up the migrations'
    # CREATE INDEX CONCURRENTLY, which waits for every running transaction.
    while not lock.execute("SELECT pg_try_advisory_lock({MIGRATE_LOCK})").fetchone()[0]:
        time.sleep(2)
    import django
    from django.core.management import call_command
    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
"""  # noqa: S608 (a constant, no input)


def claim_name(stack: Stack) -> str:
    return f"{stack.postgres_name}-data"


def _ready_check() -> Manifest:
    return {"exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", USER, "-d", NAME]}}


def build_postgres_stateful_set(stack: Stack) -> Manifest:
    db = stack.spec.label_studio.database.embedded
    container: Manifest = {
        "name": "postgres",
        "image": db.image,
        "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
        "env": [
            parts.env_value("POSTGRES_DB", NAME),
            parts.env_value("POSTGRES_USER", USER),
            parts.env_secret("POSTGRES_PASSWORD", stack.postgres_name, SECRET_POSTGRES_PASSWORD),
            # A sub-directory: the volume's root may hold lost+found, which initdb refuses.
            parts.env_value("PGDATA", f"{DATA}/pgdata"),
        ],
        "resources": parts.resources(db.resources),
        "securityContext": parts.container_security(read_only_root=True),
        "volumeMounts": [parts.mount("data", DATA), parts.mount("run", RUN), parts.mount("tmp", parts.TMP)],
        "startupProbe": {**_ready_check(), "periodSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {**_ready_check(), "periodSeconds": 10, "timeoutSeconds": 5},
        "livenessProbe": {**_ready_check(), "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6},
    }
    pod = parts.pod_spec(
        stack,
        containers=[container],
        volumes=[
            parts.claim_volume("data", claim_name(stack)),
            parts.empty_dir("run"),
            parts.empty_dir("tmp"),
        ],
        security=parts.pod_security(UID, GID),
        extra={"terminationGracePeriodSeconds": 60},
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(stack, stack.postgres_name, POSTGRES),
        "spec": {
            "replicas": 1,
            # The Service below governs it (a StatefulSet must name one).
            "serviceName": stack.postgres_name,
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": stack.selector(POSTGRES)},
            "template": {"metadata": {"labels": stack.labels(POSTGRES)}, "spec": pod},
        },
    }


def build_postgres_service(stack: Stack) -> Manifest:
    return parts.service(stack, stack.postgres_name, POSTGRES, port=PORT, port_name="postgres")


def build_postgres_claim(stack: Stack) -> Manifest:
    storage = stack.spec.label_studio.database.embedded.storage
    return parts.claim(
        stack, claim_name(stack), POSTGRES, size=storage.size, storage_class=storage.storage_class_name
    )


def build_postgres_network_policy(stack: Stack) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(stack, stack.postgres_name, POSTGRES),
        "spec": {
            "podSelector": {"matchLabels": stack.selector(POSTGRES)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    # Label Studio, and the backup CronJob's pg_dump.
                    "from": [
                        {"podSelector": {"matchLabels": stack.selector(LABEL_STUDIO)}},
                        {"podSelector": {"matchLabels": stack.selector(BACKUP)}},
                    ],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
        },
    }


def get_database_env(stack: Stack) -> list[Manifest]:
    """Label Studio's database settings (DJANGO_DB=default is its PostgreSQL)."""
    db = stack.spec.label_studio.database
    if db.type == "sqlite":
        return [parts.env_value("DJANGO_DB", "sqlite")]
    if db.type == "external" and db.external is not None:
        ext = db.external
        host, port, name, user = ext.host, ext.port, ext.name, ext.user
        password = parts.env_secret("POSTGRE_PASSWORD", ext.password_secret.name, ext.password_secret.key)
    else:
        host, port, name, user = stack.service_host(stack.postgres_name), PORT, NAME, USER
        password = parts.env_secret("POSTGRE_PASSWORD", stack.postgres_name, SECRET_POSTGRES_PASSWORD)
    return [
        parts.env_value("DJANGO_DB", "default"),
        parts.env_value("POSTGRE_HOST", host),
        parts.env_value("POSTGRE_PORT", str(port)),
        parts.env_value("POSTGRE_NAME", name),
        parts.env_value("POSTGRE_USER", user),
        password,
    ]


def build_label_studio_disruption_budget(stack: Stack) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(stack, stack.label_studio_name, LABEL_STUDIO),
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": stack.selector(LABEL_STUDIO)},
        },
    }
