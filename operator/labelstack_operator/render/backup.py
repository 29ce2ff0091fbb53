"""Scheduled database dumps: a CronJob writing to its own PVC, keeping the last ``keep``.

PostgreSQL (embedded or external) is dumped with pg_dump's custom format, from the PostgreSQL
image (the same major version as the embedded server). SQLite is copied with its online backup
API from Label Studio's own image, which must then run on Label Studio's node (the volume is
ReadWriteOnce). A dump is written under a temporary name and renamed, so a failed run leaves no
partial file that would count towards ``keep``.
"""

from __future__ import annotations

from labelstack_operator.render import parts, postgres
from labelstack_operator.render.context import BACKUP, LABEL_STUDIO, Manifest, Stack, metadata
from labelstack_operator.render.labelstudio import DATA_DIR
from labelstack_operator.render.labelstudio import GID as LS_GID
from labelstack_operator.render.labelstudio import UID as LS_UID

DIR = "/backups"

PG_DUMP = """set -eu
name="$BACKUP_DIR/labelstudio-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --no-owner --file="$name.partial"
mv "$name.partial" "$name"
ls -1t "$BACKUP_DIR"/labelstudio-*.dump | tail -n +$((BACKUP_KEEP + 1)) | xargs -r rm -f --
echo "wrote $name"
"""

SQLITE_BACKUP = """set -eu
name="$BACKUP_DIR/labelstudio-$(date -u +%Y%m%dT%H%M%SZ).sqlite3"
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \\
  "$DATA_DIR/label_studio.sqlite3" "$name.partial"
mv "$name.partial" "$name"
ls -1t "$BACKUP_DIR"/labelstudio-*.sqlite3 | tail -n +$((BACKUP_KEEP + 1)) | xargs -r rm -f --
echo "wrote $name"
"""

# What docs/operations.md tells you to run to restore a dump (tested on a real PostgreSQL).
RESTORE = 'pg_restore --clean --if-exists --no-owner --single-transaction --dbname="$PGDATABASE" "$DUMP"'


def claim_name(stack: Stack) -> str:
    return f"{stack.name}-backups"


def build_backup_claim(stack: Stack) -> Manifest:
    storage = stack.spec.backup.storage
    return parts.claim(
        stack, claim_name(stack), BACKUP, size=storage.size, storage_class=storage.storage_class_name
    )


def _pg_env(stack: Stack) -> list[Manifest]:
    # Label Studio's POSTGRE_* settings, under the names pg_dump reads.
    names = {"POSTGRE_HOST": "PGHOST", "POSTGRE_PORT": "PGPORT", "POSTGRE_NAME": "PGDATABASE"}
    names |= {"POSTGRE_USER": "PGUSER", "POSTGRE_PASSWORD": "PGPASSWORD"}
    return [
        {**var, "name": names[var["name"]]}
        for var in postgres.get_database_env(stack)
        if var["name"] in names
    ]


def build_backup_cron_job(stack: Stack) -> Manifest:
    ls = stack.spec.label_studio
    sqlite = not ls.postgres
    env = [parts.env_value("BACKUP_DIR", DIR), parts.env_value("BACKUP_KEEP", str(stack.spec.backup.keep))]
    mounts = [parts.mount("backups", DIR), parts.mount("tmp", parts.TMP)]
    volumes = [parts.claim_volume("backups", claim_name(stack)), parts.empty_dir("tmp")]
    extra: Manifest = {"restartPolicy": "OnFailure"}
    if sqlite:
        env.append(parts.env_value("DATA_DIR", DATA_DIR))
        mounts.append(parts.mount("data", DATA_DIR, read_only=True))
        volumes.append(parts.claim_volume("data", stack.label_studio_claim, read_only=True))
        # A ReadWriteOnce volume is shared by pods on one node only: run beside Label Studio.
        extra["affinity"] = {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": stack.selector(LABEL_STUDIO)},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
        image, script, uid, gid = ls.image, SQLITE_BACKUP, LS_UID, LS_GID
    else:
        env += _pg_env(stack)
        image, script, uid, gid = ls.database.embedded.image, PG_DUMP, postgres.UID, postgres.GID
    container: Manifest = {
        "name": "backup",
        "image": image,
        "command": ["/bin/sh", "-c", script],
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": parts.container_security(read_only_root=True),
        "volumeMounts": mounts,
    }
    pod = parts.pod_spec(
        stack, containers=[container], volumes=volumes, security=parts.pod_security(uid, gid), extra=extra
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(stack, f"{stack.name}-backup", BACKUP),
        "spec": {
            "schedule": stack.spec.backup.schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "template": {"metadata": {"labels": stack.labels(BACKUP)}, "spec": pod},
                }
            },
        },
    }
