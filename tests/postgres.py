"""A throwaway PostgreSQL cluster for the suite: Tryton on the database real deployments use.

Debian's PostgreSQL 15 (installed with apt when missing) runs as its own user
(the server refuses root) from a fresh data directory, on a free loopback port
with its socket in that directory, in its own process group.  The Tryton
template (modules, company, generated data) is built in it once and cached as a
``pg_dump`` beside the SQLite template, under the same key; each test restores
it into a database of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from crm_bridge.adapters.tryton.sandbox import (
    Echo,
    activate_and_seed,
    cache_dir,
    free_port,
    rows_as_of,
    run_tool,
    template_key,
)

from crm_bridge.sample_data import Profile

VERSION = "15"
BIN = Path(f"/usr/lib/postgresql/{VERSION}/bin")
USER = "postgres"


def install() -> None:
    """Debian's PostgreSQL server, from apt, when it is not there."""
    if (BIN / "initdb").exists():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"PostgreSQL {VERSION} is missing: apt-get install postgresql (as root)")
    run_tool("apt-get", "update")
    run_tool("apt-get", "install", "-y", "postgresql", DEBIAN_FRONTEND="noninteractive")


def _reachable_temp() -> str | None:
    """Where the cluster's directory goes: the temporary directory when the
    ``postgres`` user can reach it (every folder on the way open to others), else
    /tmp (a TMPDIR made by ``mktemp -d`` is the owner's alone: initdb could not
    enter it)."""
    here = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() != 0 or all(p.stat().st_mode & stat.S_IXOTH for p in (here, *here.parents)):
        return None
    return "/tmp"


class PostgresCluster:
    """initdb, pg_ctl start and stop of one cluster in a temporary directory.

    ``running`` maps the process group of every cluster started and not stopped
    to its data directory: the suite's leftover check fails a run that leaves one.
    """

    running: ClassVar[dict[int, str]] = {}

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crm-bridge-pg-", dir=_reachable_temp()))
        self.data = self.root / "data"
        self.port = free_port()
        self.uri = f"postgresql://{USER}@127.0.0.1:{self.port}/"
        self.group: int | None = None

    def _as_postgres(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
            **kw,  # type: ignore[arg-type]
        )

    def start(self) -> PostgresCluster:
        install()
        if os.geteuid() == 0:
            user = pwd.getpwnam(USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._as_postgres(
            str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync"
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        # pg_ctl starts the server in a process group (a session) of its own,
        # led by the postmaster: stop() ends that group.
        starter = subprocess.Popen(
            [
                *(["runuser", "-u", USER, "--"] if os.geteuid() == 0 else []),
                str(BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "start",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        code = starter.wait(120)
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            self.group = int(pidfile.read_text().split()[0])
            PostgresCluster.running[self.group] = str(self.data)
        if code:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            self.stop()
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{log}")
        return self

    def psql(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.uri + database, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.group is None:
            return
        try:
            if self.data.exists():
                self._as_postgres(
                    str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
                )
        except subprocess.CalledProcessError:
            pass  # not running; the group is ended below either way
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, signal.SIGKILL)
            PostgresCluster.running.pop(self.group, None)
            self.group = None
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def build_template(
    cluster: PostgresCluster, profile: Profile, echo: Echo = print, rows: Path | None = None
) -> Path:
    """A ``pg_dump`` of the Tryton template for ``profile`` (or for the canonical
    ``rows`` file), built in ``cluster`` if not cached.

    Keyed like the SQLite template (same modules, companion module, data and
    year); the generated data ends on the day it was built, rows on their as_of
    (``template_end``).
    """
    end = rows_as_of(rows) if rows else profile.end or dt.date.today()
    key = template_key(dataclasses.replace(profile, end=None), rows)
    target = cache_dir() / key / "template-pg.dump"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    database = f"crm_template_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="crm-bridge-pg-build-"))
    started = time.monotonic()
    echo(f"building the Tryton template on PostgreSQL (once; cached in {target.parent})")
    try:
        cluster.psql(f'CREATE DATABASE "{database}"')
        activate_and_seed(
            work, database, dataclasses.replace(profile, end=end), echo, cluster.uri, rows
        )
        partial = target.with_name(f"{target.name}.{os.getpid()}")
        subprocess.run(
            [
                str(BIN / "pg_dump"),
                "-Fc",
                "-Z1",
                "--no-owner",
                "-f",
                str(partial),
                cluster.uri + database,
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        target.with_suffix(".json").write_text(json.dumps({"end": end.isoformat()}))
        os.replace(partial, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        cluster.psql(f'DROP DATABASE IF EXISTS "{database}"')
    echo(f"  PostgreSQL template ready in {time.monotonic() - started:.0f}s")
    return target


def restore(cluster: PostgresCluster, dump: Path, database: str) -> None:
    """A new database ``database`` in ``cluster`` holding the template ``dump``."""
    cluster.psql(f'CREATE DATABASE "{database}"')
    subprocess.run(
        [str(BIN / "pg_restore"), "--no-owner", "-d", cluster.uri + database, str(dump)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
