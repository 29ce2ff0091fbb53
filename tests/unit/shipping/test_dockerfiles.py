"""The two Dockerfiles, without a Docker engine: lint, COPY sources, entry points, users, pins."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from labelstack_common import contract
from labelstack_operator.render import backends as backend_render
from tests.support.dockerfile import Stage, expand, parse

REPO = Path(__file__).resolve().parents[3]
OPERATOR = REPO / "Dockerfile.operator"
BACKEND = REPO / "Dockerfile.backend"
DOCKERFILES = [OPERATOR, BACKEND]
HADOLINT = Path(sys.executable).parent / "hadolint"
NON_ROOT = "10001:10001"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|python3?-dev|cmake|git)\b")


def final(path: Path) -> Stage:
    return parse(path)[1][-1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """In a fresh interpreter: imports here must not leak into this test process (gunicorn's
    config sets process-wide variables) and must not find modules this process already has."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path):
    proc = subprocess.run(
        [str(HADOLINT), "--config", str(REPO / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_does_find_problems(tmp_path):
    # The control for the test above: an unpinned base and a root user are reported.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN cd /tmp && apt-get install curl\n")
    proc = subprocess.run(
        [str(HADOLINT), "--config", str(REPO / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "DL3006" in proc.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_is_in_the_build_context(path):
    patterns = dockerignore_patterns()
    _, stages = parse(path)
    names = {stage.name for stage in stages}
    copied = 0
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            *sources, _dest = copy.args
            if "from" in copy.flags:
                assert copy.flags["from"] in names, f"{copy.text}: no stage {copy.flags['from']}"
                continue
            for source in sources:
                assert (REPO / source).exists(), f"{path.name}: COPY {source}: no such path"
                assert not ignored(source.rstrip("/"), patterns), f"{source} is in .dockerignore"
                copied += 1
    assert copied >= 2


def test_the_dockerignore_check_sees_an_ignored_path():
    assert ignored("tests/unit", dockerignore_patterns())
    assert ignored("operator/labelstack_operator/__pycache__", dockerignore_patterns())
    assert not ignored("operator/labelstack_operator", dockerignore_patterns())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_as_the_non_root_user_the_pods_expect(path):
    stage = final(path)
    (user,) = stage.all("USER")
    assert user.text == NON_ROOT
    chart_values = yaml.safe_load((REPO / "charts" / "labelstack" / "values.yaml").read_text())
    assert chart_values["podSecurityContext"]["runAsUser"] == 10001
    assert (contract.UID, contract.GID) == (10001, 10001)
    # The user exists in the image with that id.
    (created,) = [r for r in stage.all("RUN") if "useradd" in r.text]
    assert "--uid 10001" in created.text and "--gid 10001" in created.text


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_with_no_build_tools_and_no_pip_in_the_final_stage(path):
    _, stages = parse(path)
    assert len(stages) >= 2
    for stage in stages:
        for run in stage.all("RUN"):
            assert not BUILD_TOOLS.search(run.text), f"build tools in {path.name}: {run.text}"
    # Dependencies are wheels only, so no stage needs a compiler...
    installs = [r.text for s in stages for r in s.all("RUN") if "pip install" in r.text]
    assert installs and all("--only-binary=:all:" in text for text in installs)
    # ...and the venv copied into the final stage leaves pip behind.
    assert any(re.search(r"pip uninstall -y [^&]*\bpip\b", r.text) for s in stages for r in s.all("RUN"))
    assert not [r for r in final(path).all("RUN") if "pip" in r.text]


def console_script(dist: str, name: str) -> str:
    (entry,) = list(importlib.metadata.entry_points(group="console_scripts", name=name))
    assert entry.dist is not None and entry.dist.name.lower() == dist
    return entry.value


def test_operator_entry_point_imports():
    (entrypoint,) = final(OPERATOR).all("ENTRYPOINT")
    assert entrypoint.args == ("labelstack-operator",)
    project = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())["project"]
    target = project["scripts"]["labelstack-operator"]
    module, _, func = target.partition(":")
    proc = run_python(
        f"import importlib; m = importlib.import_module({module!r}); assert callable(m.{func}); "
        "m.parse_args(['--log-level', 'DEBUG']); import labelstack_operator.handlers"
    )
    assert proc.returncode == 0, proc.stderr


def test_backend_entry_point_is_gunicorn_with_its_config_and_the_app_imports():
    stage = final(BACKEND)
    (entrypoint,) = stage.all("ENTRYPOINT")
    (cmd,) = stage.all("CMD")
    assert entrypoint.args == ("gunicorn", "-c", "python:labelstack_backend.server.gunicorn_conf")
    assert console_script("gunicorn", "gunicorn") == "gunicorn.app.wsgiapp:run"
    # The operator's backend pods run the same command line as the image.
    assert [*entrypoint.args, *cmd.args] == backend_render.COMMAND
    (app,) = cmd.args
    module, _, call = app.partition(":")
    factory = call.removesuffix("()")
    config = entrypoint.args[2].removeprefix("python:")
    proc = run_python(
        f"import importlib; conf = importlib.import_module({config!r}); "
        "assert conf.worker_class == 'gthread' and not conf.preload_app; "
        f"m = importlib.import_module({module!r}); assert callable(m.{factory})"
    )
    assert proc.returncode == 0, proc.stderr


def test_backend_healthcheck_runs_a_module_that_imports():
    (check,) = final(BACKEND).all("HEALTHCHECK")
    assert check.args[:3] == ("CMD", "python", "-m")
    assert "start-period" in check.flags
    proc = run_python(
        f"import importlib; m = importlib.import_module({check.args[3]!r}); assert callable(m.main)"
    )
    assert proc.returncode == 0, proc.stderr


def test_backend_base_is_the_cuda_release_the_pinned_torch_was_built_for():
    global_args, stages = parse(BACKEND)
    base = expand(expand(global_args["BASE_IMAGE"], global_args), global_args)
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-(base|runtime)-ubuntu\d+\.\d+", base), base
    pins = importlib.metadata.requires("torch") or []
    (toolkit,) = [p for p in pins if p.startswith("cuda-toolkit")]
    assert f"=={global_args['CUDA_VERSION']}" in toolkit, toolkit
    backend_pins = tomllib.loads((REPO / "backend" / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"torch=={importlib.metadata.version('torch')}" in backend_pins
    assert stages[0].base == "${BASE_IMAGE}"


def test_backend_starts_offline_and_weights_are_optional():
    stage = final(BACKEND)
    env = stage.env()
    assert env["YOLO_OFFLINE"] == "1" and env["YOLO_AUTOINSTALL"] == "False"
    assert env["YOLO_CONFIG_DIR"] == "/opt/labelstack/ultralytics"
    # The settings folder with its font is made in the build stage and copied in, writable.
    copies = {c.args[0]: c for c in stage.all("COPY")}
    assert copies["/opt/labelstack/ultralytics"].flags == {"from": "build", "chown": NON_ROOT}
    build = parse(BACKEND)[1][1]
    assert any("prepare_ultralytics()" in r.text and "Arial.ttf" in r.text for r in build.all("RUN"))
    # Weights: an empty folder unless WEIGHTS names files in the build context.
    assert copies["/weights/"].flags == {"from": "weights"}
    (weights,) = [s for s in parse(BACKEND)[1] if s.name == "weights"]
    (arg,) = weights.all("ARG")
    assert arg.text == 'WEIGHTS=""'


def test_prepared_ultralytics_folder_has_its_font(tmp_path, monkeypatch):
    from labelstack_backend.runtime import prepare_ultralytics

    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    folder = prepare_ultralytics(tmp_path / "ultralytics")
    assert (folder / "Ultralytics" / "Arial.ttf").stat().st_size > 10_000


def pruned_distributions() -> list[str]:
    (build, _) = parse(OPERATOR)[1]
    (prune,) = [r for r in build.all("RUN") if "pip uninstall" in r.text]
    words = prune.text.split("&&")[0].split()
    return words[words.index("-y") + 1 :]


def test_operator_runs_without_the_packages_its_image_removes():
    modules = importlib.metadata.packages_distributions()
    pruned = {d.lower() for d in pruned_distributions()}
    assert {"opencv-python-headless", "pip"} <= pruned
    blocked = sorted(m for m, dists in modules.items() if pruned & {d.lower() for d in dists})
    assert "cv2" in blocked and "PIL" in blocked
    code = f"""
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('removed from the operator image: ' + name)
sys.meta_path.insert(0, Block())
import labelstack_operator.__main__, labelstack_operator.handlers, labelstack_common.wiring
from labelstack_common.labelstudio import LabelStudioClient
LabelStudioClient('http://127.0.0.1:9', 't' * 40).sdk
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
