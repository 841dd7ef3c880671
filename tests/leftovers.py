"""A pytest plugin: the suite stops every server it started.

At the end of the session, a process the tests started and left running — a
trytond a :class:`TrytonServer` started and nobody stopped, a PostgreSQL cluster
(tests/postgres.py) nobody stopped, or any other child of the pytest process (a
chromedriver, a ``crm-bridge`` subprocess) — is named, killed, and fails the run:
a clean-clone ``make test`` must leave nothing behind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from crm_bridge.adapters.tryton.sandbox import TrytonServer

from .postgres import PostgresCluster

_FOUND = pytest.StashKey[dict[int, str]]()


def children(pid: int) -> dict[int, str]:
    """The living (not zombie) child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # after "pid (command)"
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers() -> dict[int, str]:
    """Servers and other processes this process started that still run."""
    left = {
        pid: f"trytond serving {url} (never stopped)"
        for pid, url in TrytonServer.running.items()
        if group_alive(pid)
    }
    for pid, data in PostgresCluster.running.items():
        if group_alive(pid):
            left[pid] = f"PostgreSQL serving {data} (never stopped)"
    for pid, command in children(os.getpid()).items():
        left.setdefault(pid, command)
    return left


def _kill(pid: int) -> None:
    try:
        group = os.getpgid(pid)
        if group != os.getpgrp():  # its own group (trytond): everything in it
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    left = leftovers()
    if not left:
        return
    for pid in left:
        _kill(pid)
    TrytonServer.running.clear()
    PostgresCluster.running.clear()
    session.config.stash[_FOUND] = left
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left = terminalreporter.config.stash.get(_FOUND, {})
    if not left:
        return
    terminalreporter.section("processes left running", red=True)
    for pid, command in sorted(left.items()):
        terminalreporter.write_line(f"pid {pid}: {command}", red=True)
    terminalreporter.write_line(
        f"the tests left {len(left)} process(es) running (killed now): the run fails; "
        "stop every server a test or fixture starts",
        red=True,
        bold=True,
    )
