"""The workers' shared readiness board, on its own files."""

from __future__ import annotations

from labelstack_backend.server.workers import STATE_DIR_ENV, WorkerBoard


def test_the_board_counts_ready_workers_against_what_the_master_runs(tmp_path):
    board = WorkerBoard(tmp_path / "board")
    board.reset(3)
    assert board.counts() == (0, 3)
    board.mark_ready(101)
    board.mark_ready(102)
    board.mark_ready(102)  # twice is once
    assert board.counts() == (2, 3)
    board.forget(101)  # the master reaped it
    board.forget(999)  # never there: nothing to do
    assert board.counts() == (1, 3)
    board.set_expected(1)
    assert board.counts() == (1, 1)


def test_a_new_server_forgets_what_a_killed_one_left(tmp_path):
    board = WorkerBoard(tmp_path)
    board.reset(2)
    board.mark_ready(7)
    board.mark_ready(8)
    WorkerBoard(tmp_path).reset(2)  # the container restarted: pids 7 and 8 are someone else now
    assert board.counts() == (0, 2)


def test_before_the_master_writes_a_count_a_worker_only_knows_itself(tmp_path):
    board = WorkerBoard(tmp_path)
    assert board.counts() == (0, 1)
    board.mark_ready(5)
    assert board.counts() == (1, 1)
    (tmp_path / "workers").write_text("garbage")
    assert board.counts() == (1, 1)


def test_the_board_comes_from_the_environment_gunicorn_sets(tmp_path):
    assert WorkerBoard.from_env({}) is None
    assert WorkerBoard.from_env({STATE_DIR_ENV: str(tmp_path)}) == WorkerBoard(tmp_path)
