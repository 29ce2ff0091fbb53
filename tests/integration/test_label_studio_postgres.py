"""Label Studio 1.23 on a real PostgreSQL: migrated once under a lock, then two processes on one
database serve the same project."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labelstack_common.labelstudio import LabelStudioClient
from labelstack_operator.render.postgres import MIGRATE_SCRIPT
from labelstack_tools.localstack.labelstudio import LabelStudioProcess, label_studio_bin, new_token
from labelstack_tools.localstack.ports import free_port

pytestmark = pytest.mark.integration


def _process(base: Path, env: dict[str, str], token: str) -> LabelStudioProcess:
    return LabelStudioProcess(
        data_dir=base,
        port=free_port(),
        username="admin@labelstack.test",
        password="labelstack-test-pw",
        token=token,
        extra_env=env,
    )


def test_two_label_studios_on_one_postgres_serve_the_same_project(postgres, tmp_path):
    postgres.create_database("two_replicas")
    env = postgres.env("two_replicas")
    token = new_token()
    first, second = _process(tmp_path / "a", env, token), _process(tmp_path / "b", env, token)
    # The pods' init step, twice at once: one migrates under the lock, the other waits, then has nothing to do.
    python = label_studio_bin().parent / "python"
    runs = [
        subprocess.Popen(
            [str(python), "-c", MIGRATE_SCRIPT],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [run.communicate(timeout=400)[0] for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("Applying " in out for out in outputs) == 1, outputs
    try:
        # One after the other: each start creates the admin when it is missing, and two at once race.
        first.start()
        first.wait_ready(timeout=300)
        second.start()
        second.wait_ready(timeout=300)
        a, b = LabelStudioClient(first.url, token), LabelStudioClient(second.url, token)
        project = a.sdk.projects.create(
            title="Shared", label_config="<View><Text name='t' value='$t'/></View>"
        )
        b.sdk.projects.import_tasks(id=project.id, request=[{"t": "written through the second"}])
        tasks = a.json("GET", f"/api/tasks/?project={project.id}")["tasks"]
        assert [t["data"]["t"] for t in tasks] == ["written through the second"]
        assert [p.title for p in b.sdk.projects.list()] == ["Shared"]
    finally:
        second.stop()
        first.stop()
