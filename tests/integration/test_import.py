"""Bulk import into a real Label Studio from the GCS emulator and from a folder."""

from __future__ import annotations

import io
import uuid

import pytest
import requests
from PIL import Image

from labelstack_backend import gcs
from labelstack_tools.cli.main import main as labelstack
from tests.support.gcs_emulator import make_bucket

pytestmark = pytest.mark.integration

CONFIG = """<View>
  <Header value="$designer"/>
  <Image name="image" value="$image"/>
  <PolygonLabels name="garment" toName="image"><Label value="dress"/></PolygonLabels>
</View>"""


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32 + i % 5, 24), (i * 5 % 255, 80, 120)).save(buf, format="JPEG")
    return buf.getvalue()


def project_tasks(ls, project_id: int) -> list[dict]:
    return ls.client.json(
        "GET", f"/api/tasks/?project={project_id}&page_size=1000&fields=all&resolve_uri=false"
    )["tasks"]


def run_import(ls, *args: str) -> int:
    return labelstack(["import", "--url", ls.url, "--token", ls.token, *args])


@pytest.fixture
def bucket(gcs_emulator):
    name = f"archive-{uuid.uuid4().hex[:8]}"
    make_bucket(name)
    return gcs.client().bucket(name)


def test_bucket_import_is_idempotent_and_carries_metadata(label_studio, bucket, tmp_path, capsys):
    for i in range(50):
        bucket.blob(f"runway/ss24/look-{i:03d}.jpg").upload_from_string(jpeg(i), content_type="image/jpeg")
    bucket.blob("runway/ss24/notes.txt").upload_from_string("not an image")
    rows = ["file,designer,season"] + [f"look-{i:03d}.jpg,Designer {i % 7},SS24" for i in range(50)]
    rows += ["look-999.jpg,Ghost,SS24", "look-001.jpg,Twice,SS24"]  # lines 52 and 53 are bad
    sidecar = tmp_path / "meta.csv"
    sidecar.write_text("\n".join(rows) + "\n")
    project = label_studio.client.sdk.projects.create(title=f"runway {bucket.name}", label_config=CONFIG)
    source = f"gs://{bucket.name}/runway/ss24"

    assert run_import(label_studio, "--project", str(project.id), source, "--metadata", str(sidecar)) == 0
    out = capsys.readouterr().err
    assert "50 images" in out and "50 new tasks" in out and "50 tasks got metadata" in out
    assert "line 52: no image look-999.jpg in the source" in out
    assert "line 53: look-001.jpg already described on line 3" in out
    tasks = project_tasks(label_studio, project.id)
    assert len(tasks) == 50
    by_uri = {t["data"]["image"]: t["data"] for t in tasks}
    assert by_uri[f"{source}/look-007.jpg"] == {
        "image": f"{source}/look-007.jpg",
        "designer": "Designer 0",
        "season": "SS24",
    }

    # Again: nothing new, nothing to update.
    assert run_import(label_studio, "--project", project.title, source, "--metadata", str(sidecar)) == 0
    out = capsys.readouterr().err
    assert "0 new tasks" in out and "0 tasks got metadata" in out
    assert len(project_tasks(label_studio, project.id)) == 50

    # Five more images: five more tasks. Pressing Label Studio's Sync afterwards adds none.
    for i in range(50, 55):
        bucket.blob(f"runway/ss24/look-{i:03d}.jpg").upload_from_string(jpeg(i), content_type="image/jpeg")
    assert run_import(label_studio, "--project", str(project.id), source) == 0
    assert "5 new tasks" in capsys.readouterr().err
    storages = label_studio.client.sdk.import_storage.gcs.list(project=project.id)
    assert len(storages) == 1
    label_studio.client.sdk.import_storage.gcs.sync(id=storages[0].id)
    assert len(project_tasks(label_studio, project.id)) == 55

    # Label Studio serves the bucket's images (through its GCS proxy).
    task = next(
        t for t in project_tasks(label_studio, project.id) if t["data"]["image"].endswith("look-003.jpg")
    )
    url = label_studio.client.json("GET", f"/api/tasks/{task['id']}?resolve_uri=true")["data"]["image"]
    resp = label_studio.client.request("GET", url)
    assert resp.content == jpeg(3)


def test_import_reuses_a_declared_storage(label_studio, bucket, capsys):
    """A LabelingStack declares the GCS source storage; import must not make a second one."""
    for i in range(3):
        bucket.blob(f"in/{i}.png").upload_from_string(jpeg(i))
    project = label_studio.client.sdk.projects.create(title=f"declared {bucket.name}", label_config=CONFIG)
    storage = label_studio.client.sdk.import_storage.gcs.create(
        project=project.id, bucket=bucket.name, prefix="in", use_blob_urls=True, title="declared"
    )
    label_studio.client.sdk.import_storage.gcs.sync(id=storage.id)
    assert len(project_tasks(label_studio, project.id)) == 3
    assert run_import(label_studio, "--project", str(project.id), f"gs://{bucket.name}/in") == 0
    assert "0 new tasks" in capsys.readouterr().err
    assert len(label_studio.client.sdk.import_storage.gcs.list(project=project.id)) == 1


def test_folder_import(label_studio, capsys):
    folder = label_studio.files_root / f"photos-{uuid.uuid4().hex[:6]}" / "runway"
    folder.mkdir(parents=True)
    for i in range(4):
        (folder / f"p{i}.jpg").write_bytes(jpeg(i))
    (folder / "meta.jsonl").write_text('{"file": "p1.jpg", "designer": "X"}\n{broken\n')
    project = label_studio.client.sdk.projects.create(
        title=f"folder {folder.parent.name}", label_config=CONFIG
    )
    args = ["--project", str(project.id), str(folder), "--metadata", str(folder / "meta.jsonl")]
    assert run_import(label_studio, *args) == 0
    out = capsys.readouterr().err
    assert "4 new tasks" in out and "1 tasks got metadata" in out and "line 2: not valid JSON" in out
    tasks = project_tasks(label_studio, project.id)
    designer = {t["data"]["image"].rsplit("/", 1)[1]: t["data"].get("designer") for t in tasks}
    assert designer == {"p0.jpg": None, "p1.jpg": "X", "p2.jpg": None, "p3.jpg": None}
    # The backend reads these URLs through Label Studio with its token.
    resp = requests.get(
        label_studio.url + tasks[0]["data"]["image"].split(label_studio.url)[-1],
        headers=label_studio.client.auth_headers(),
        timeout=10,
    )
    assert resp.status_code == 200
    assert run_import(label_studio, *args) == 0
    assert "0 new tasks" in capsys.readouterr().err


def test_a_folder_outside_the_document_root_is_refused_clearly(label_studio, tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(jpeg(1))
    project = label_studio.client.sdk.projects.create(
        title=f"outside {uuid.uuid4().hex[:6]}", label_config=CONFIG
    )
    assert run_import(label_studio, "--project", str(project.id), str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "LOCAL_FILES_DOCUMENT_ROOT" in err
