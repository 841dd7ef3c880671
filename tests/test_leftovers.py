"""The session-end check of tests/leftovers.py: a run that leaves a server (or any
process) running fails, says which, and stops it; a clean run passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .leftovers import group_alive

ROOT = Path(__file__).parent.parent

LEAKY = """
import subprocess
from pathlib import Path

from crm_bridge.adapters.tryton.sandbox import TrytonServer


def test_starts_a_server_and_forgets_it(tmp_path):
    server = TrytonServer(tmp_path, "nothing-here").start()  # serves no database; runs
    Path({pids!r}).write_text(str(server.proc.pid))


def test_starts_a_process_and_forgets_it():
    sleeper = subprocess.Popen(["sleep", "300"])
    with open({pids!r}, "a") as out:
        out.write(f" {{sleeper.pid}}")


def test_cleans_up_after_itself():
    subprocess.run(["sleep", "0"], check=True)
"""


def _pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    # Its own --basetemp: a new numbered /tmp/pytest-of-USER/pytest-N would make pytest
    # prune the oldest one, which may be the outer session's, still in use.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.leftovers", "-p", "no:cacheprovider"),
            *("--basetemp", str(folder.parent / f"{folder.name}-tmp")),
            *("--rootdir", str(folder), str(folder)),
        ],
        cwd=ROOT,  # where `tests.leftovers` imports from
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def test_a_run_that_leaves_a_server_running_fails_and_stops_it(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_leaky.py").write_text(LEAKY.format(pids=str(pids)))
    proc = _pytest(suite)
    out = proc.stdout
    assert "3 passed" in out, out
    assert proc.returncode == 1, out
    server, sleeper = (int(p) for p in pids.read_text().split())
    assert f"pid {server}: trytond serving http://127.0.0.1:" in out
    assert "(never stopped)" in out
    assert f"pid {sleeper}: sleep 300" in out
    assert "the tests left 2 process(es) running (killed now): the run fails" in out
    assert not group_alive(server) and not Path(f"/proc/{sleeper}").exists()


def test_a_clean_run_passes(tmp_path: Path) -> None:
    (tmp_path / "test_clean.py").write_text(
        "import subprocess\n\n\ndef test_clean():\n    subprocess.run(['sleep', '0'])\n"
    )
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "processes left running" not in proc.stdout


def test_starting_a_running_server_again_starts_no_second_one(tmp_path: Path) -> None:
    """``with TrytonServer(...).start() as server`` (start, then ``__enter__``) used to
    start a second trytond that answered through the first and was the only one
    stopped: the first ran on after the benchmark ended."""
    from crm_bridge.adapters.tryton.sandbox import TrytonServer

    server = TrytonServer(tmp_path, "nothing-here").start()  # serves no database; runs
    first = server.proc
    assert first is not None
    with server.start() as same:
        assert same is server and server.proc is first
    assert first.poll() is not None and not group_alive(first.pid)
    assert first.pid not in TrytonServer.running
