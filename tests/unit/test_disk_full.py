"""A full MODEL_DIR disk: training fails with the reason, caches go on, serving is untouched,
and no failed write leaves a temporary file behind.

As root the disk is a real 2 MiB tmpfs filled to the last page (ENOSPC); where no tmpfs can be
mounted the folders are made read-only with chmod (EACCES), which fails the same writes with
another reason.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from labelstack_backend.diskspace import disk_reason, disk_reason_in, storage_errors, write_via_temp
from labelstack_backend.errors import InsufficientStorage
from labelstack_backend.imagecache import DiskCache
from labelstack_backend.registry import ModelRegistry, open_registry
from labelstack_backend.registry.store import atomic_write
from labelstack_backend.server.app import create_app
from labelstack_backend.server.wsgi import build_service
from labelstack_backend.settings import Settings
from labelstack_backend.training import job
from labelstack_backend.training.manager import TrainingManager
from labelstack_backend.training.state import FileJobStore, JobState, JobStatus, JobStore
from tests.support.fixtures import FileServer

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<PolygonLabels name="poly" toName="image"><Label value="person"/></PolygonLabels></View>'
)
LOCKS = {".jobs.lock", ".train.lock"}  # kept on purpose: an flock needs its file
MiB = 1 << 20


def temp_files(root: Path) -> list[Path]:
    """What a failed write can leave: temporary files (``.job.json.x``, ``.tmp-x``), staging
    folders (``.staging-x``) and training work folders (``train-x``)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.name != "ballast"
        and ((p.name.startswith(".") and p.name not in LOCKS) or p.name.startswith("train-"))
    )


@dataclass
class Disk:
    root: Path
    tmpfs: bool

    @property
    def reason(self) -> str:
        """The reason a write to MODEL_DIR gets on this disk."""
        where = f"MODEL_DIR ({self.root.resolve()})"
        return f"no space left on {where}" if self.tmpfs else f"{where} is not writable (permission denied)"

    def fill(self, leave: int = 0, only: Path | None = None) -> None:
        """Fill the tmpfs up to ``leave`` free bytes; without tmpfs, make the folders under
        ``only`` (default: all) read-only."""
        if not self.tmpfs:
            for folder in [only or self.root, *(only or self.root).rglob("*")]:
                if folder.is_dir():
                    folder.chmod(0o555)
            return
        st = os.statvfs(self.root)
        ballast = self.root / "ballast"
        with ballast.open("ab", buffering=0) as fh:  # unbuffered: a full disk fails the write itself
            fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
            if leave == 0:  # to the last page, whatever the rounding
                with pytest.raises(OSError) as full:
                    while True:
                        fh.write(b"\0" * 4096)
                assert full.value.errno == errno.ENOSPC
        if leave == 0:
            with pytest.raises(OSError, match="No space left"):
                (self.root / "probe").write_bytes(b"x")
            (self.root / "probe").unlink(missing_ok=True)

    def restore(self) -> None:
        for folder in [self.root, *self.root.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)


def chmod_stops_writes(folder: Path) -> bool:
    """False for root with CAP_DAC_OVERRIDE, which writes into a read-only folder anyway."""
    probe = folder / "probe"
    probe.mkdir(mode=0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    return False


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """MODEL_DIR on a small disk that a test fills: a tmpfs where it can be mounted (root),
    else read-only folders (chmod)."""
    root = tmp_path / "models"
    root.mkdir()
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], check=False, capture_output=True
        ).returncode
        == 0
    )
    if not mounted and not chmod_stops_writes(tmp_path):
        pytest.skip("cannot mount a tmpfs here, and chmod does not stop this user's writes")
    found = Disk(root, tmpfs=mounted)
    try:
        yield found
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], check=False)
        else:
            found.restore()


# -- the helper, on any machine -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "filename", "expected"),
    [
        (errno.ENOSPC, None, "no space left on MODEL_DIR ({root})"),
        (errno.EDQUOT, "{root}/a/b", "disk quota exceeded on MODEL_DIR ({root})"),
        (errno.EROFS, "{root}/x", "MODEL_DIR ({root}) is read-only"),
        (errno.EACCES, "{root}/x", "MODEL_DIR ({root}) is not writable (permission denied)"),
        (errno.ENOSPC, "/dev/shm/torch_1", "no space left on /dev/shm/torch_1"),  # not MODEL_DIR's fault
        (errno.EACCES, "/etc/shadow", None),  # a read elsewhere: not about this disk
        (errno.EACCES, None, None),
        (errno.ENOENT, "{root}/x", None),
    ],
)
def test_the_reason_names_the_folder_that_failed(
    tmp_path: Path, code: int, filename: str | None, expected: str | None
) -> None:
    root = tmp_path.resolve()
    exc = OSError(code, os.strerror(code), filename.format(root=root) if filename else None)
    assert disk_reason(exc, tmp_path) == (expected.format(root=root) if expected else None)


def test_a_copy_is_blamed_on_its_destination(tmp_path: Path) -> None:
    # shutil.copyfile's ENOSPC carries the source as filename and the destination as filename2.
    exc = OSError(errno.ENOSPC, "No space left on device", "/elsewhere/best.pt", None, str(tmp_path / "m.pt"))
    assert disk_reason(exc, tmp_path) == f"no space left on MODEL_DIR ({tmp_path.resolve()})"


def test_a_full_disk_under_a_library_error_is_found(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("PytorchStreamWriter failed writing file") from inner
    except RuntimeError as outer:
        assert disk_reason_in(outer, tmp_path) == f"no space left on MODEL_DIR ({tmp_path.resolve()})"
    assert disk_reason_in(RuntimeError("other"), tmp_path) is None


def test_storage_errors_raise_507_and_let_other_errors_through(tmp_path: Path) -> None:
    with pytest.raises(InsufficientStorage) as caught, storage_errors(tmp_path):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert caught.value.status == 507 and "disk quota exceeded on MODEL_DIR" in caught.value.reason
    with pytest.raises(FileNotFoundError), storage_errors(tmp_path):
        raise FileNotFoundError(errno.ENOENT, "gone", str(tmp_path / "x"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_failed_atomic_write_keeps_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    target = tmp_path / "current"
    atomic_write(target, "v1\n")

    def refuse(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", refuse)  # a disk full at the fsync, after the data went out
    with pytest.raises(OSError) as caught:
        atomic_write(target, "v2\n")
    assert caught.value.errno == code
    assert target.read_text() == "v1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"]


def test_a_failed_cache_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Full(io.BytesIO):
        """A file on a full disk: the write fails (and the descriptor is closed with it)."""

        def __init__(self, fd: int) -> None:
            super().__init__()
            self.fd = fd

        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            os.close(self.fd)
            super().close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(fd))
    cache = DiskCache(tmp_path / "cache", 100 * MiB)
    cache.put("gs://b/a.jpg", b"x" * 1000)  # must not raise
    assert cache.get("gs://b/a.jpg") is None
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_write_via_temp_replaces_in_one_rename(tmp_path: Path) -> None:
    write_via_temp(tmp_path / "f", b"one")
    write_via_temp(tmp_path / "f", b"two", durable=False)
    assert (tmp_path / "f").read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f"]


# -- on a full disk ---------------------------------------------------------------------------------
def test_job_state_on_a_full_disk_is_a_507_and_the_old_state_stays(disk: Disk) -> None:
    store = FileJobStore(disk.root)
    store.update("1", lambda s: JobState(project="1", status=JobStatus.DONE, version="v1"))
    disk.fill()
    with pytest.raises(InsufficientStorage) as caught:
        store.update("1", lambda s: JobState(project="1", status=JobStatus.QUEUED))
    assert caught.value.status == 507 and caught.value.reason == disk.reason
    assert (store.get("1").status, store.get("1").version) == (JobStatus.DONE, "v1")
    assert temp_files(disk.root) == []


def test_publishing_weights_that_do_not_fit_leaves_nothing_half_written(disk: Disk, tmp_path: Path) -> None:
    registry = ModelRegistry(disk.root)
    weights = tmp_path / "best.pt"
    weights.write_bytes(os.urandom(MiB // 2))
    first = registry.publish("3", weights, base="yolov8n-seg", meta={})
    weights.write_bytes(os.urandom(MiB))
    disk.fill(leave=MiB // 4, only=registry.project_dir("3") / "versions")
    with pytest.raises(InsufficientStorage) as caught:
        registry.publish("3", weights, base="yolov8n-seg", meta={})
    assert caught.value.reason == disk.reason
    assert [v.name for v in registry.versions("3")] == [first.name]
    assert registry.current_name("3") == first.name
    assert temp_files(disk.root) == []


def test_the_image_cache_on_a_full_disk_logs_one_line_and_goes_on(
    disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DiskCache(disk.root / "cache" / "images", 100 * MiB)
    cache.put("warm", b"w" * 100)  # its folders exist, as on a running backend
    disk.fill()
    with caplog.at_level(logging.DEBUG, logger="labelstack_backend.imagecache"):
        cache.put("https://example.com/a.jpg", os.urandom(64 * 1024))
        cache.put("https://example.com/b.jpg", os.urandom(64 * 1024))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    where = f"the image cache ({(disk.root / 'cache' / 'images').resolve()})"
    said = f"no space left on {where}" if disk.tmpfs else f"{where} is not writable"
    assert len(warnings) == 1 and said in warnings[0], warnings  # one line, not one per image
    assert cache.get("https://example.com/a.jpg") is None and cache.get("warm") == b"w" * 100
    assert temp_files(disk.root) == []


FakeTrain = Callable[[Settings, str, JobStore, Callable[[], None]], JobState | None]


@pytest.mark.parametrize("step", ["dataset", "weights"])
def test_a_training_that_fills_the_disk_fails_with_the_reason(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    settings = Settings.from_env({"MODEL_DIR": str(disk.root)})
    weights = tmp_path / "best.pt"  # what fit() produced, in its work folder
    weights.write_bytes(os.urandom(MiB))

    def train_once(settings: Settings, project: str, store: JobStore, still_ours: Callable[[], None]) -> None:
        # The disk-writing steps of the real train_once: a dataset in the scratch folder, then publish.
        registry = open_registry(settings)
        with registry.scratch(project) as work:
            (work / "dataset").mkdir()
            if step == "dataset":
                (work / "dataset" / "task-1.jpg").write_bytes(os.urandom(MiB))
            registry.publish(project, weights, base="yolov8n-seg", meta={})

    monkeypatch.setattr(job, "train_once", train_once)
    project_dir = ModelRegistry(settings.model_dir_resolved).project_dir("5")
    for sub in ("work", "versions"):
        (project_dir / sub).mkdir(parents=True)
    # Room for the job state, not for the training's files (without tmpfs: those folders refuse).
    disk.fill(leave=MiB // 4, only=project_dir / ("work" if step == "dataset" else "versions"))
    store = FileJobStore(settings.model_dir_resolved)
    assert job.run(settings, "5", store) == 1
    state = store.get("5")
    assert state.status is JobStatus.FAILED and state.reason == disk.reason, state.reason
    assert not any((project_dir / "versions").iterdir())
    assert temp_files(disk.root) == []


def test_a_job_that_cannot_even_record_its_failure_says_so_through_its_exit_code(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({"MODEL_DIR": str(disk.root)})
    store = FileJobStore(settings.model_dir_resolved)
    store.update("6", lambda s: JobState(project="6", status=JobStatus.QUEUED))
    disk.fill()
    assert job.run(settings, "6", store) == job.EXIT_UNRECORDED
    assert temp_files(disk.root) == []


def test_start_training_on_a_full_disk_is_a_507_and_serving_goes_on(
    disk: Disk, file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {
            "LABELSTACK_DEMO_MODEL": "1",
            "MODEL_DIR": str(disk.root),
            "LABELSTACK_SCORE_THRESHOLD": "0.0",
            "LABEL_STUDIO_URL": "http://127.0.0.1:9",  # never reached: nothing may start
            "LABEL_STUDIO_API_KEY": "token",
        }
    )
    service = build_service(settings)
    spawned: list[str] = []

    def spawn(project: str, env: Any) -> Any:
        spawned.append(project)
        raise AssertionError("no training may start on a full disk")

    service.trainer = TrainingManager(FileJobStore(settings.model_dir_resolved), spawn=spawn)
    client = create_app(service).test_client()
    assert service.start_loading().join(120) is None and service.wait_ready(1)
    Image.effect_noise((320, 180), 60).convert("RGB").save(file_server.root / "wide.jpg")
    settings.image_cache_path.mkdir(parents=True)
    disk.fill()

    resp = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert resp.status_code == 507, resp.json
    assert resp.json == {"error": disk.reason} and not spawned

    assert client.get("/health").status_code == 200
    with caplog.at_level(logging.WARNING, logger="labelstack_backend.imagecache"):
        task = {"id": 1, "data": {"image": f"{file_server.url}/wide.jpg"}}  # fetched, so cached
        resp = client.post("/predict", json={"tasks": [task], "project": "7", "label_config": CONFIG})
    assert resp.status_code == 200
    (result,) = resp.json["results"]
    assert "error" not in result and result["model_version"] == "yolov8n-seg-random"
    assert any("image cache write failed" in r.getMessage() for r in caplog.records)
    assert temp_files(disk.root) == []
