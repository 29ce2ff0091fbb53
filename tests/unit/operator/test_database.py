"""Label Studio's database: an embedded PostgreSQL by default, an external one, or SQLite; replicas."""

from __future__ import annotations

from typing import Any

import pytest

from labelstack_operator import reconcile
from labelstack_operator.render import Stack, own, parts
from labelstack_operator.render.context import POSTGRES
from labelstack_operator.render.postgres import MIGRATE_SCRIPT
from labelstack_operator.spec import SpecError, parse_spec
from tests.support.operator import Namespace
from tests.support.shipping import validate
from tests.unit.operator.test_render import by_key, container, env, pod, rendered

TEAM: dict[str, Any] = {
    "labelStudio": {"replicas": 3, "storage": {"accessMode": "ReadWriteMany"}},
    "backends": [{"name": "seg", "type": "segmentation", "weights": {"demo": True}}],
}
EXTERNAL: dict[str, Any] = {
    "labelStudio": {
        "database": {
            "type": "external",
            "external": {"host": "db.example.com", "passwordSecret": {"name": "db", "key": "pw"}},
        }
    }
}


@pytest.mark.parametrize("spec", [TEAM, EXTERNAL, {"labelStudio": {"database": {"type": "sqlite"}}}])
def test_every_database_setup_validates_strict_and_is_locked_down(spec):
    for obj in rendered(spec):
        validate(obj)
        if obj["kind"] in ("Deployment", "StatefulSet"):
            template = obj["spec"]["template"]["spec"]
            assert template["securityContext"]["runAsNonRoot"] is True
            for cont in [*template["containers"], *template.get("initContainers", [])]:
                assert cont["securityContext"]["allowPrivilegeEscalation"] is False
                assert cont["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_embedded_postgres_is_non_root_on_its_own_claim_and_answers_label_studio_only():
    objs = by_key(rendered({}))
    spec = pod(list(objs.values()), "garments-postgres")
    assert spec["securityContext"]["runAsUser"] == 999
    db = spec["containers"][0]
    assert db["securityContext"]["readOnlyRootFilesystem"] is True
    assert db["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert env(db)["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "garments-postgres", "key": "password"}}
    claim = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claim == {"garments-postgres-data"}
    # One pod at a time, on the operator's own claim (not a volumeClaimTemplates one), governed by
    # the Service Label Studio connects to.
    db_set = objs[("StatefulSet", "garments-postgres")]["spec"]
    assert db_set["replicas"] == 1 and db_set["serviceName"] == "garments-postgres"
    assert "volumeClaimTemplates" not in db_set
    assert ("Deployment", "garments-postgres") not in objs
    assert objs[("Service", "garments-postgres")]["spec"]["selector"] == db_set["selector"]["matchLabels"]
    policy = objs[("NetworkPolicy", "garments-postgres")]["spec"]
    (rule,) = policy["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "label-studio"
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]


def test_label_studio_on_postgres_migrates_once_in_an_init_step_and_rolls_several_replicas():
    objs = by_key(rendered(TEAM))
    ls = objs[("Deployment", "garments-label-studio")]
    values = env(container(list(objs.values()), "garments-label-studio"))
    assert values["DJANGO_DB"] == "default"
    assert values["POSTGRE_HOST"] == "garments-postgres.labelling.svc"
    assert values["POSTGRE_PASSWORD"] == {"secretKeyRef": {"name": "garments-postgres", "key": "password"}}
    (init,) = ls["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["python3", "-c", MIGRATE_SCRIPT] and "pg_try_advisory_lock" in MIGRATE_SCRIPT
    assert ls["spec"]["replicas"] == 3
    assert ls["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    budget = objs[("PodDisruptionBudget", "garments-label-studio")]["spec"]
    assert budget["maxUnavailable"] == 1
    assert objs[("PersistentVolumeClaim", "garments-label-studio-data")]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]


def test_an_external_database_is_named_and_nothing_is_run_for_it():
    objs = by_key(rendered(EXTERNAL))
    assert not {("Deployment", "garments-postgres"), ("StatefulSet", "garments-postgres")} & set(objs)
    values = env(container(list(objs.values()), "garments-label-studio"))
    assert (values["POSTGRE_HOST"], values["POSTGRE_PORT"], values["POSTGRE_NAME"]) == (
        "db.example.com",
        "5432",
        "labelstudio",
    )
    assert values["POSTGRE_PASSWORD"] == {"secretKeyRef": {"name": "db", "key": "pw"}}
    with pytest.raises(SpecError, match=r"needs labelStudio\.database\.external"):
        parse_spec({"labelStudio": {"database": {"type": "external"}}})


def test_sqlite_stays_one_pod_replaced_not_rolled():
    objs = by_key(rendered({"labelStudio": {"database": {"type": "sqlite"}}}))
    assert not [k for k in objs if k[1].startswith("garments-postgres")]
    ls = objs[("Deployment", "garments-label-studio")]
    assert ls["spec"]["strategy"] == {"type": "Recreate"} and ls["spec"]["replicas"] == 1
    assert "initContainers" not in ls["spec"]["template"]["spec"]
    assert env(container(list(objs.values()), "garments-label-studio"))["DJANGO_DB"] == "sqlite"


@pytest.mark.parametrize(
    ("label_studio", "reason"),
    [
        ({"replicas": 2, "database": {"type": "sqlite"}}, "needs PostgreSQL"),
        ({"replicas": 2}, "needs labelStudio.storage.accessMode ReadWriteMany"),
    ],
)
def test_several_replicas_on_sqlite_or_a_read_write_once_volume_are_refused_with_no_writes(
    server, ctx, label_studio, reason
):
    ns = Namespace(server, f"refused-{len(reason)}")
    ns.create_stack({"labelStudio": label_studio})
    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    ready = ns.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert reason in ready["message"]
    assert [w for w in ns.writes_since(mark) if w[1] not in ("labelingstacks", "events")] == []


def test_a_stack_an_older_operator_ran_postgres_for_as_a_deployment_keeps_its_claim(server, ctx):
    """The older render's Deployment of the same name, controlled by the stack, is pruned (before
    the StatefulSet is applied, so that the two never share the volume) and the data stays."""
    ns = Namespace(server, "postgres-upgrade")
    ns.create_stack({})
    reconcile.reconcile(ctx, ns.stack())
    claim_uid = ns.get("v1", "persistentvolumeclaims", "garments-postgres-data")["metadata"]["uid"]
    # What an older operator left: a Recreate Deployment on the same claim, and no StatefulSet.
    stack = Stack(name="garments", namespace=ns.name, uid=ns.stack()["metadata"]["uid"], spec=parse_spec({}))
    server.delete("apps/v1", "statefulsets", ns.name, "garments-postgres")
    old = parts.deployment(
        stack, stack.postgres_name, POSTGRES, replicas=1, pod={"containers": []}, recreate=True
    )
    server.create(own(stack, old), "deployments")

    mark = len(server.requests())
    reconcile.reconcile(ctx, ns.stack())
    assert ns.names("apps/v1", "deployments") == {"garments-label-studio", "garments-redis"}
    assert ns.names("apps/v1", "statefulsets") == {"garments-postgres"}
    writes = [
        (method, plural) for method, plural, name in ns.writes_since(mark) if name == "garments-postgres"
    ]
    assert writes.index(("DELETE", "deployments")) < writes.index(("PATCH", "statefulsets"))
    claim = ns.get("v1", "persistentvolumeclaims", "garments-postgres-data")
    assert claim["metadata"]["uid"] == claim_uid
    set_pod = ns.get("apps/v1", "statefulsets", "garments-postgres")["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "garments-postgres-data"}} in set_pod[
        "volumes"
    ]
