"""spec.backup: a CronJob dumping the database to its own PVC; its last success in the status."""

from __future__ import annotations

import pytest

from labelstack_operator import reconcile
from labelstack_operator.render.backup import PG_DUMP, SQLITE_BACKUP
from tests.support.operator import Namespace
from tests.support.shipping import validate
from tests.unit.operator.test_render import by_key, env, rendered

BACKUP = {"backup": {"enabled": True, "keep": 5, "schedule": "30 2 * * *"}}
SQLITE = {**BACKUP, "labelStudio": {"database": {"type": "sqlite"}}}


@pytest.mark.parametrize("spec", [BACKUP, SQLITE], ids=["postgres", "sqlite"])
def test_the_backup_cron_job_validates_strict_and_is_locked_down(spec):
    objs = by_key(rendered(spec))
    job = objs[("CronJob", "garments-backup")]
    validate(job)
    validate(objs[("PersistentVolumeClaim", "garments-backups")])
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    (cont,) = pod["containers"]
    assert cont["securityContext"]["readOnlyRootFilesystem"] is True
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and job["spec"]["schedule"] == "30 2 * * *"
    assert env(cont)["BACKUP_KEEP"] == "5"


def test_postgres_is_dumped_with_pg_dump_which_its_network_policy_admits():
    objs = by_key(rendered(BACKUP))
    pod = objs[("CronJob", "garments-backup")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (cont,) = pod["containers"]
    assert cont["command"] == ["/bin/sh", "-c", PG_DUMP] and cont["image"].startswith("postgres:")
    values = env(cont)
    assert values["PGHOST"] == "garments-postgres.labelling.svc" and values["PGDATABASE"] == "labelstudio"
    assert values["PGPASSWORD"] == {"secretKeyRef": {"name": "garments-postgres", "key": "password"}}
    sources = objs[("NetworkPolicy", "garments-postgres")]["spec"]["ingress"][0]["from"]
    components = {s["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for s in sources}
    assert components == {"label-studio", "backup"}
    # Not a Label Studio pod: its Service, budget and egress policy leave the job alone.
    labels = objs[("CronJob", "garments-backup")]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    assert labels["labels"]["app.kubernetes.io/component"] == "backup"


def test_sqlite_is_copied_online_beside_label_studio():
    pod = by_key(rendered(SQLITE))[("CronJob", "garments-backup")]["spec"]["jobTemplate"]["spec"]["template"]
    spec = pod["spec"]
    assert spec["containers"][0]["command"] == ["/bin/sh", "-c", SQLITE_BACKUP]
    assert ".backup(" in SQLITE_BACKUP
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {"garments-backups", "garments-label-studio-data"}
    term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_no_backup_unless_asked():
    assert not [k for k in by_key(rendered({})) if k[0] == "CronJob"]


def test_the_last_successful_backup_is_in_the_status(server, ctx):
    ns = Namespace(server, "backups")
    ns.create_stack(BACKUP)
    reconcile.reconcile(ctx, ns.stack())
    assert "lastBackup" not in ns.stack()["status"]
    status = {"lastSuccessfulTime": "2026-12-06T02:31:07Z"}
    server.patch("batch/v1", "cronjobs", ns.name, "garments-backup", {"status": status}, sub="status")
    reconcile.reconcile(ctx, ns.stack())
    assert ns.stack()["status"]["lastBackup"] == "2026-12-06T02:31:07Z"
