"""The admin's credentials, the state file and the logs: private, reused, checked when read, and
where the README says."""

from __future__ import annotations

import json
import stat

import pytest

from labelstack_tools.localstack import credentials, state
from labelstack_tools.localstack.files import private_dir
from labelstack_tools.localstack.plan import Layout
from labelstack_tools.localstack.up import prepare_data


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_admin_is_generated_once_privately_then_reused(tmp_path):
    root = private_dir(tmp_path / "stack")
    assert mode(root) == 0o700
    first, generated = credentials.load_or_create(root)
    assert generated and len(first.token) == 40 and "@" in first.username and first.password
    assert mode(root / credentials.FILE_NAME) == 0o600
    again, generated = credentials.load_or_create(root)
    assert again == first and not generated


def test_a_damaged_credentials_file_is_an_error_that_names_it(tmp_path):
    (tmp_path / credentials.FILE_NAME).write_text('{"username": "a", "password": "b", "token": "short"}')
    with pytest.raises(credentials.CredentialsError, match="40 characters"):
        credentials.load_or_create(tmp_path)
    (tmp_path / credentials.FILE_NAME).write_text("{not json")
    with pytest.raises(credentials.CredentialsError, match=r"cannot read .*credentials\.json"):
        credentials.load_or_create(tmp_path)


def test_the_state_file_round_trips_and_is_private(tmp_path):
    sup = state.ProcessRecord("labelstack up", 10, 1700000000.25)
    current = state.StackState(
        supervisor=sup,
        status=state.READY,
        processes=[state.ProcessRecord("redis", 11, 1700000001.5, "/l/redis.log", "redis://x")],
        project_id=3,
        label_studio_url="http://127.0.0.1:8080",
    )
    state.write(tmp_path, current)
    assert mode(state.path_in(tmp_path)) == 0o600
    assert state.read(tmp_path) == current
    state.remove(tmp_path)
    assert state.read(tmp_path) is None


@pytest.mark.parametrize(
    "body",
    [
        {"format": 99},
        {"format": 1, "supervisor": {"name": "up"}},
        {"format": 1, "supervisor": {"name": "up", "pid": 1, "started": 0}, "processes": "redis"},
    ],
)
def test_a_state_file_of_another_shape_is_refused(tmp_path, body):
    state.path_in(tmp_path).write_text(json.dumps(body))
    with pytest.raises(state.StateError):
        state.read(tmp_path)


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)


def test_label_studios_log_is_with_the_other_logs(tmp_path):
    layout = Layout(private_dir(tmp_path / "stack"))
    ls = prepare_data(layout, 8080, tmp_path / "bin" / "label-studio", Lines())  # type: ignore[arg-type]
    assert ls.log_path == layout.logs / "label-studio.log"
