"""GCS source and target storages, against the real fake-gcs-server and a Label Studio using it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from labelstack_common.wiring import GcsStorage, ProjectPlan, wire
from tests.support.stacks import GARMENT_CONFIG

pytestmark = pytest.mark.integration


def png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (shade, 40, 90)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def buckets(gcs_emulator):
    client = gcs_emulator.client()
    images = client.create_bucket("runway-images")
    client.create_bucket("runway-labels")
    for i in range(3):
        images.blob(f"ss26/look{i}.png").upload_from_string(png(60 * i), content_type="image/png")
    images.blob("ss26/README.txt").upload_from_string(b"not an image")
    images.blob("aw25/other.png").upload_from_string(png(200), content_type="image/png")
    return client


def tasks_of(client, project_id: int) -> list[dict]:
    return client.json("GET", "/api/tasks", params={"project": project_id, "page_size": 100})["tasks"]


def test_storages_are_created_once_and_synced(label_studio, buckets):
    client = label_studio.client
    plan = ProjectPlan(
        title="Runway from GCS",
        label_config=GARMENT_CONFIG,
        gcs_source=GcsStorage("runway-images", "ss26", regex_filter=r".*\.png$", presign=False),
        gcs_target=GcsStorage("runway-labels", "exports"),
    )
    first = wire(client, [plan])
    (project,) = first.projects
    assert project.changes == [
        "created project",
        "connected source gs://runway-images/ss26",
        "connected target gs://runway-labels/exports",
    ]
    assert project.synced == ["gs://runway-images/ss26", "gs://runway-labels/exports"]

    # The prefix and the filter hold: three images under ss26, nothing else.
    tasks = tasks_of(client, project.id)
    assert len(tasks) == 3
    sources = client.call("list", client.sdk.import_storage.gcs.list, project=project.id)
    targets = client.call("list", client.sdk.export_storage.gcs.list, project=project.id)
    assert [(s.bucket, s.prefix, s.status) for s in sources] == [("runway-images", "ss26", "completed")]
    assert [(t.bucket, t.prefix) for t in targets] == [("runway-labels", "exports")]

    # A second run syncs again, but imports nothing twice and connects nothing twice.
    second = wire(client, [plan])
    assert not second.changed and second.projects[0].synced == project.synced
    assert len(tasks_of(client, project.id)) == 3
    assert len(client.call("list", client.sdk.import_storage.gcs.list, project=project.id)) == 1

    # A new image shows up on the next sync; an annotation is exported to the target.
    buckets.bucket("runway-images").blob("ss26/look9.png").upload_from_string(
        png(250), content_type="image/png"
    )
    client.json(
        "POST",
        f"/api/tasks/{tasks[0]['id']}/annotations/",
        json={"result": [], "was_cancelled": False, "ground_truth": False},
    )
    wire(client, [plan])
    assert len(tasks_of(client, project.id)) == 4
    exported = [b.name for b in buckets.list_blobs("runway-labels", prefix="exports")]
    assert len(exported) == 1
