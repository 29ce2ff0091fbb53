"""The backup CronJob's dump and the documented restore, on a real PostgreSQL and Label Studio 1.23:
a backup taken, the database dropped, the restore gives back every task and annotation."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_operator.render.backup import PG_DUMP, RESTORE
from labelstack_tools.localstack.labelstudio import LabelStudioProcess, new_token
from labelstack_tools.localstack.ports import free_port

pytestmark = pytest.mark.integration

CONFIG = """<View><Text name="t" value="$t"/>
<Choices name="c" toName="t"><Choice value="yes"/><Choice value="no"/></Choices></View>"""


def _shell(script: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["/bin/sh", "-c", script], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _snapshot(client: LabelStudioClient, project: int) -> list[tuple[str, list[str]]]:
    tasks = client.json("GET", f"/api/tasks/?project={project}&fields=all&page_size=100")["tasks"]
    return sorted(
        (t["data"]["t"], [a["result"][0]["value"]["choices"][0] for a in t["annotations"]]) for t in tasks
    )


def test_a_dump_restored_into_a_dropped_database_gives_back_every_task_and_annotation(postgres, tmp_path):
    postgres.create_database("backed_up")
    token = new_token()
    ls = LabelStudioProcess(
        data_dir=tmp_path / "ls",
        port=free_port(),
        username="admin@labelstack.test",
        password="labelstack-test-pw",
        token=token,
        extra_env=postgres.env("backed_up"),
    )
    ls.start()
    try:
        ls.wait_ready(timeout=300)
        client = LabelStudioClient(ls.url, token)
        project = client.sdk.projects.create(title="Runway", label_config=CONFIG).id
        client.sdk.projects.import_tasks(id=project, request=[{"t": f"photo {i}"} for i in range(5)])
        for i, task in enumerate(client.json("GET", f"/api/tasks/?project={project}")["tasks"]):
            choice = "yes" if i % 2 else "no"
            value = {"choices": [choice]}
            result = [{"from_name": "c", "to_name": "t", "type": "choices", "value": value}]
            client.sdk.annotations.create(id=task["id"], result=result)
        before = _snapshot(client, project)
        assert len(before) == 5 and all(len(a) == 1 for _, a in before)
    finally:
        ls.stop()

    # The CronJob's script, three times with keep 2: the two newest dumps stay.
    backups = tmp_path / "backups"
    backups.mkdir()
    env = {
        **os.environ,
        "PATH": f"{postgres.bin_dir}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGDATABASE": "backed_up",
        "PGUSER": "postgres",
        "BACKUP_DIR": str(backups),
        "BACKUP_KEEP": "2",
    }
    for run in range(3):
        if run:
            time.sleep(1.1)  # dumps are named by the second
        _shell(PG_DUMP, env)
    dumps = sorted(backups.glob("labelstudio-*.dump"))
    assert len(dumps) == 2 and not list(backups.glob("*.partial"))

    # Disaster, then the documented restore into a new, empty database.
    _shell('dropdb --force "$PGDATABASE" && createdb "$PGDATABASE"', env)
    _shell(RESTORE, {**env, "DUMP": str(dumps[-1])})

    ls.start()
    try:
        ls.wait_ready(timeout=300)
        assert _snapshot(LabelStudioClient(ls.url, token), project) == before
    finally:
        ls.stop()
