"""A real Tryton on SQLite and loopback, for the demo, the tests and the benchmarks.

Building a database (module activation, company, chart of accounts, generated
documents) takes minutes, so it is built once into a template file kept in the
user's cache directory under a key made of everything that shapes it: the
trytond and module versions, the companion module's source, the data profile
and the current year (a template whose fiscal years have ended cannot post new
invoices).  A sandbox copies the template (~0.1 s) and starts a server on a
free port in its own process group.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import ClassVar

import requests

from crm_bridge.sample_data import Profile

MODULES = (
    "party",
    "company",
    "account",
    "account_invoice",
    "product",
    "sale",
    "sale_opportunity",
    "sale_complaint",
    "crm_bridge",
)
ADMIN_PASSWORD = "admin"
Echo = Callable[[str], None]


def cache_dir() -> Path:
    base = os.environ.get("CRM_BRIDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crm-bridge"
    )
    return Path(base) / "tryton"


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: pip install 'crm-bridge[tryton]'")
    return found


def _env(directory: Path, uri: str = "sqlite://", **extra: str) -> dict[str, str]:
    """trytond's configuration: SQLite files in ``directory``, or the server at ``uri``."""
    env = dict(os.environ)
    env.update(
        TRYTOND_DATABASE__URI=uri,
        TRYTOND_DATABASE__PATH=str(directory),
        TRYTOND_SESSION__MAX_ATTEMPT="50",
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


def template_key(profile: Profile, rows: Path | None = None) -> str:
    """The cache key of a template: versions, the companion module, the loader,
    and the data (the generator's profile, or the rows file loaded instead)."""
    h = hashlib.sha256()
    for dist in ["trytond", *(f"trytond_{m}" for m in MODULES if m != "crm_bridge")]:
        h.update(f"{dist}={metadata.version(dist)};".encode())
    module = resources.files("trytond_crm_bridge")
    for name in ("tryton.cfg", "party.py", "party.xml", "message.xml"):
        h.update(module.joinpath(name).read_bytes())
    for view in sorted(module.joinpath("view").iterdir(), key=lambda v: v.name):
        h.update(view.name.encode() + view.read_bytes())
    seed = resources.files("crm_bridge.adapters.tryton").joinpath("seed.py").read_bytes()
    data = resources.files("crm_bridge").joinpath("sample_data.py").read_bytes()
    h.update(seed + data)
    h.update(repr(dataclasses.astuple(profile)).encode() if rows is None else rows.read_bytes())
    h.update(str(dt.date.today().year).encode())
    return h.hexdigest()[:16]


def build_template(profile: Profile, echo: Echo = print, rows: Path | None = None) -> Path:
    """Return the template database file for ``profile`` (or for the canonical
    ``rows`` file of ``seed.write_rows``, ending on its as_of), building it if needed."""
    end = rows_as_of(rows) if rows else profile.end or dt.date.today()
    # The end date moves every day; keying on it would rebuild daily, so the
    # key leaves it out (the year is in it) and the template records its own
    # end date beside it (see template_end).
    key = template_key(dataclasses.replace(profile, end=None), rows)
    target = cache_dir() / key / "template.sqlite"
    if target.exists():
        return target
    work = target.parent.with_name(f"{key}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "template.sqlite"
    db.touch()
    started = time.monotonic()
    echo(f"building the Tryton template database (once; cached in {target.parent})")
    activate_and_seed(work, "template", dataclasses.replace(profile, end=end), echo, rows=rows)
    (target.parent).mkdir(parents=True, exist_ok=True)
    target.with_suffix(".json").write_text(json.dumps({"end": end.isoformat()}))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(db, target)
    shutil.rmtree(work, ignore_errors=True)
    echo(f"  template ready in {time.monotonic() - started:.0f}s")
    return target


def rows_as_of(rows: Path) -> dt.date:
    """The analysis date of a rows file (``seed.write_rows``)."""
    return dt.date.fromisoformat(json.loads(rows.read_text("utf-8"))["as_of"])


def activate_and_seed(
    work: Path,
    database: str,
    profile: Profile,
    echo: Echo = print,
    uri: str = "sqlite://",
    rows: Path | None = None,
) -> None:
    """Activate the modules in ``database`` (an SQLite file in ``work`` or a
    database of the server at ``uri``) and load the generated data (or ``rows``)
    into it."""
    assert profile.end is not None
    passfile = work / "password"
    passfile.write_text(ADMIN_PASSWORD + "\n")
    started = time.monotonic()
    try:
        subprocess.run(
            [
                _bin("trytond-admin"),
                "-d",
                database,
                "-u",
                *MODULES,
                "--activate-dependencies",
                "--email",
                "admin@example.com",
            ],
            env=_env(work, uri, TRYTONPASSFILE=str(passfile)),
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
    finally:
        passfile.unlink()
    echo(f"  modules activated in {time.monotonic() - started:.0f}s; loading generated data")
    args = [
        sys.executable,
        "-O",
        "-m",
        "crm_bridge.adapters.tryton.seed",
        database,
        "--customers",
        str(profile.customers),
        "--years",
        str(profile.years),
        "--invoices-per-year",
        str(profile.invoices_per_year),
        "--seed",
        str(profile.seed),
        "--end",
        profile.end.isoformat(),
        *(["--rows", str(rows)] if rows else []),
    ]
    with subprocess.Popen(
        args, env=_env(work, uri), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        tail: list[str] = []
        for line in proc.stderr:
            tail = [*tail[-30:], line]
            if ":" in line and line.strip().endswith("s") and not line.startswith(" "):
                echo("  " + line.rstrip())
    if proc.returncode:
        raise RuntimeError("seeding the Tryton database failed:\n" + "".join(tail))


def template_end(template: Path) -> dt.date:
    """The last day of the generated data in ``template`` (the day it was built)."""
    meta = json.loads(template.with_suffix(".json").read_text())
    return dt.date.fromisoformat(meta["end"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrytonServer:
    """A trytond process serving ``directory/<database>.sqlite`` on loopback,
    or ``database`` of the PostgreSQL server at ``uri``.

    ``running`` holds the pid (= process group) and URL of every server this
    process started and has not stopped: the test suite fails a run that leaves one.
    """

    running: ClassVar[dict[int, str]] = {}

    def __init__(
        self,
        directory: Path,
        database: str,
        port: int | None = None,
        web_root: Path | None = None,
        uri: str = "sqlite://",
    ) -> None:
        self.directory = directory
        self.database = database
        self.uri = uri
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.web_root = web_root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> TrytonServer:
        """Start the server and wait until it answers; a server already running is
        left as it is (``with TrytonServer(...).start() as server`` starts one, not
        a second that would answer through the first and leave it running)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        extra = {"TRYTOND_WEB__LISTEN": f"127.0.0.1:{self.port}"}
        if self.web_root:
            extra["TRYTOND_WEB__ROOT"] = str(self.web_root)
        log = open(self.directory / f"trytond-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [_bin("trytond"), "-d", self.database],
            env=_env(self.directory, self.uri, **extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        TrytonServer.running[self.proc.pid] = self.url
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                TrytonServer.running.pop(self.proc.pid, None)
                raise RuntimeError(
                    f"trytond exited with {self.proc.returncode}; see "
                    f"{self.directory}/trytond-{self.port}.log"
                )
            try:
                r = requests.post(
                    f"{self.url}/rpc/",
                    json={"id": 0, "method": "common.server.version", "params": []},
                    timeout=2,
                )
                if r.ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"trytond did not start on port {self.port} in {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            TrytonServer.running.pop(self.proc.pid, None)
        self.proc = None

    def __enter__(self) -> TrytonServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def sandbox(
    directory: Path, profile: Profile, database: str = "demo", echo: Echo = print
) -> TrytonServer:
    """Copy the template for ``profile`` into ``directory`` and return an unstarted server."""
    template = build_template(profile, echo)
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (directory / f"{database}.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, directory / f"{database}.sqlite")
    return TrytonServer(directory, database)


SAO_VERSION = "8.0.11"  # the web client of Tryton 8.0, like the server


def run_tool(*args: str, cwd: Path | None = None, **env: str) -> None:
    """Run an installer (npm, apt-get) quietly; its output only when it fails."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def web_client() -> Path:
    """The Tryton web client (sao) to serve as trytond's web root, installed once.

    ``tryton-sao`` from npm with its runtime dependencies (``npm pack``, then
    ``npm install --omit=dev``), kept in the cache keyed by version.
    """
    root = cache_dir() / f"sao-{SAO_VERSION}"
    if (root / "node_modules" / "jquery").is_dir():
        return root
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the Tryton web client (tryton-sao)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_tool(npm, "pack", f"tryton-sao@{SAO_VERSION}", "--silent", cwd=work)
        with tarfile.open(next(work.glob("tryton-sao-*.tgz"))) as archive:
            archive.extractall(work, filter="data")
        run_tool(
            npm,
            "install",
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--legacy-peer-deps",  # sao pins a dev-only grunt plugin with an old peer
            "--silent",
            cwd=work / "package",
        )
        partial = root.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.move(str(work / "package"), partial)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return root
