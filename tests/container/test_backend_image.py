"""The backend image as a cluster runs it: its own entry point and non-root user, MODEL_DIR on a
mounted volume, images from loopback, both predictors, and a trained version that outlives the
container."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from labelstack_backend import rle
from labelstack_common import contract
from labelstack_common.wiring import ensure_user
from labelstack_tools.localstack.ports import free_port
from tests.support import containers, stacks
from tests.support.backend import BackendServer, serving, training_ended, versions, wait_until_ready
from tests.support.fixtures import FileServer
from tests.support.projects import DEMO_SHAPES_CONFIG, shapes_project
from tests.support.sam import CONFIG as SAM_CONFIG
from tests.support.sam import keypoint, write_image
from tests.unit.operator.test_render import pod, rendered

pytestmark = [pytest.mark.container, pytest.mark.slow]

USER = f"{contract.UID}:{contract.GID}"


@dataclass
class Started:
    server: BackendServer
    container: containers.Container
    volumes: dict[str, Path]  # mount path -> host folder


@contextmanager
def backend_container(
    image: str,
    tmp_path: Path,
    env: Mapping[str, str],
    *,
    argv: Sequence[str] | None = None,
    mounts: Sequence[str] = ("/models",),
    read_only_root: bool = False,
) -> Iterator[Started]:
    """A new container of the image, started by its entry point (or ``argv``), with a host folder
    on each of ``mounts`` (``/models``'s is kept between containers); stopped with
    SIGTERM, and gone, on exit (a pod's restart is a new container). ``read_only_root``: it
    must not have written anywhere but its volumes."""
    port = free_port()

    def folder(path: str) -> Path:
        # /models outlives the container (a PVC); the rest are a new pod's emptyDirs.
        root = tmp_path / ("volumes" if path == "/models" else f"emptydirs-{port}")
        return containers.owned_by(root / path.strip("/").replace("/", "-"), USER)

    volumes = {path: folder(path) for path in mounts}
    with containers.container(image) as ctr:
        running = ctr.start(
            tmp_path / f"backend-{port}.log",
            argv=argv,
            env={**env, "PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1"},
            volumes={host: inside for inside, host in volumes.items()},
        )
        server = BackendServer(f"http://127.0.0.1:{port}", running.proc, running.log_path, dict(env))
        try:
            wait_until_ready(server, timeout=240)
            yield Started(server, ctr, volumes)
        finally:
            code = containers.stop(running)
        assert code == 0, f"gunicorn ended with {code} on SIGTERM:\n{running.log()[-3000:]}"
        assert "Traceback" not in running.log(), running.log()[-3000:]
        if read_only_root:
            # What the pod's read-only root filesystem would have refused.
            assert ctr.written() == [], running.log()[-3000:]


@dataclass(frozen=True)
class PodShape:
    """How the operator runs a backend's container (its pure rendering of a demo stack)."""

    command: tuple[str, ...]
    env: dict[str, str]  # the plain values; Secrets are the test's to give
    mounts: tuple[str, ...]
    user: str
    read_only_root: bool


def pod_shape(backend: str) -> PodShape:
    objs = rendered({**stacks.SMALL, "redis": {"enabled": False}})
    spec = pod(objs, f"garments-{backend}")
    (cont,) = spec["containers"]
    security = {**spec["securityContext"], **cont["securityContext"]}
    return PodShape(
        command=tuple(cont["command"]),
        env={e["name"]: e["value"] for e in cont["env"] if "value" in e},
        mounts=tuple(m["mountPath"] for m in cont["volumeMounts"]),
        user=f"{security['runAsUser']}:{security['runAsGroup']}",
        read_only_root=security["readOnlyRootFilesystem"],
    )


def predict(
    server: BackendServer, image_url: str, label_config: str, context: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One task's ``/predict``, as Label Studio sends it; the answer's predictions."""
    body = {
        "tasks": [{"id": 1, "data": {"image": image_url}}],
        "project": "1.1700000000",
        "label_config": label_config,
        "params": {"context": context},
    }
    answer = requests.post(f"{server.url}/predict", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    return results


def test_the_image_runs_as_its_own_user_and_carries_only_the_data_plane(backend_image: str) -> None:
    cfg = containers.config(backend_image)
    assert cfg.user == USER
    assert cfg.entrypoint[0] == "gunicorn" and cfg.cmd, cfg
    assert cfg.env["MODEL_DIR"] == "/models" and "9090/tcp" in cfg.exposed
    assert cfg.healthcheck[:2] == ("CMD", "python"), "Docker format keeps the HEALTHCHECK"
    with containers.container(backend_image) as ctr:
        probe = ctr.exec(
            [
                "python",
                "-c",
                "import os, importlib.util as u; print(os.getuid(), os.getgid(), "
                "u.find_spec('labelstack_backend') is not None, u.find_spec('labelstack_operator'), "
                "u.find_spec('labelstack_tools'), u.find_spec('kopf'), u.find_spec('pip'))",
            ]
        )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["10001", "10001", "True", "None", "None", "None", "None"]


def test_the_cuda_flavour_has_its_libraries_and_answers_without_a_gpu(backend_image: str) -> None:
    script = (
        "import ctypes, json, torch;"
        "libs = ['libcudart.so.13', 'libcublas.so.13', 'libcudnn.so.9'];"
        "import nvidia, pathlib;"
        "root = pathlib.Path(nvidia.__path__[0]);"
        "found = {n: [str(p) for p in root.rglob(n)] for n in libs};"
        "[ctypes.CDLL(p[0]) for p in found.values() if p];"
        "print(json.dumps({'cuda': torch.version.cuda, 'available': torch.cuda.is_available(), "
        "'found': {n: bool(p) for n, p in found.items()}}))"
    )
    with containers.container(backend_image) as ctr:
        done = ctr.exec(["python", "-c", script])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["cuda"].startswith("13.") and answer["available"] is False
    assert answer["found"] == {"libcudart.so.13": True, "libcublas.so.13": True, "libcudnn.so.9": True}


def test_segmentation_answers_health_predict_and_its_own_healthcheck(
    backend_image: str, tmp_path: Path, file_server: FileServer
) -> None:
    write_image(file_server.root / "look.jpg", (160, 128))
    env = {"LABELSTACK_DEMO_MODEL": "1", "LABELSTACK_SCORE_THRESHOLD": "0.0", "LABELSTACK_IMGSZ": "160"}
    with backend_container(backend_image, tmp_path, env) as started:
        server = started.server
        health = requests.get(f"{server.url}/health", timeout=5).json()
        assert health["status"] == "UP" and health["model_class"] == "segmentation"
        (prediction,) = predict(server, f"{file_server.url}/look.jpg", DEMO_SHAPES_CONFIG)
        assert prediction["result"], "threshold 0: the random model finds something"
        assert {(r["original_width"], r["original_height"]) for r in prediction["result"]} == {(160, 128)}
        # The image's HEALTHCHECK command, run beside the server as Docker would run it.
        check = containers.config(backend_image).healthcheck[1:]
        with containers.container(backend_image) as beside:
            probe = beside.exec(list(check), env={"PORT": server.url.rsplit(":", 1)[1]})
        assert probe.returncode == 0, probe.stdout + probe.stderr


def test_sam_answers_a_click_on_a_loopback_image(
    backend_image: str, tmp_path: Path, file_server: FileServer
) -> None:
    write_image(file_server.root / "click.jpg", (96, 64))
    env = {"LABELSTACK_PREDICTOR": "sam", "LABELSTACK_SAM_MODEL_TYPE": "tiny", "LABELSTACK_DEMO_MODEL": "1"}
    with backend_container(backend_image, tmp_path, env) as started:
        server = started.server
        context = {"result": [keypoint(40, 45, 96, 64)]}
        (prediction,) = predict(server, f"{file_server.url}/click.jpg", SAM_CONFIG, context)
        (region,) = prediction["result"]
        assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Shirt"]
        mask = rle.decode(region["value"]["rle"], 64, 96)
        assert mask.shape == (64, 96) and mask.any()


def test_as_the_operator_runs_it_a_trained_version_outlives_the_container(
    backend_image: str, label_studio, tmp_path: Path
) -> None:
    """The operator's command, environment, volumes and user, with the root filesystem left
    untouched (the pod's is read-only), and the backends' own Label Studio account (not the
    admin's) as the operator makes it: train through a real Label Studio, then a new container
    on the same /models serves the trained version."""
    shape = pod_shape("seg")
    assert shape.user == USER and shape.read_only_root
    assert shape.command == containers.config(backend_image).entrypoint + containers.config(backend_image).cmd
    made = shapes_project(label_studio, [(160, 128), (128, 160), (160, 160)], DEMO_SHAPES_CONFIG)
    project = made.project
    account = ensure_user(
        label_studio.client,
        f"backends-{uuid.uuid4().hex[:6]}@labelstack.test",
        "a-Long-enough-pw-3",
        want_token=True,
    )
    assert account.token and account.token != label_studio.token
    env = {
        **shape.env,
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": account.token,
        "LABELSTACK_TRAIN_EPOCHS": "1",
        "LABELSTACK_TRAIN_IMGSZ": "96",
        "LABELSTACK_TRAIN_BATCH": "4",
        "LABELSTACK_TRAIN_EXTRA": json.dumps({"mosaic": 0.0, "warmup_epochs": 0}),
    }
    as_a_pod = {"argv": shape.command, "mounts": shape.mounts, "read_only_root": shape.read_only_root}
    with backend_container(backend_image, tmp_path, env, **as_a_pod) as first:
        server = first.server
        ml = label_studio.client.sdk.ml.create(project=project.id, url=server.url, title="segmentation")
        assert label_studio.client.sdk.ml.get(id=ml.id).state == "CO"
        for task, scene in zip(made.tasks, made.scenes, strict=True):
            label_studio.client.sdk.annotations.create(
                id=task["id"], result=scene.polygon_regions(), was_cancelled=False
            )
        label_studio.client.sdk.ml.train(id=ml.id)
        job = training_ended(server.url, project.id, timeout=300)
        assert job["status"] == "done", job
        trained = job["version"]
        serving(server.url, project.id, trained)
        label_studio.client.sdk.ml.delete(id=ml.id)
    assert (first.volumes["/tmp"] / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()

    with backend_container(backend_image, tmp_path, env, **as_a_pod) as again:
        info = versions(again.server.url, project.id)
        assert info["model_version"] == trained and trained in info["versions"]
