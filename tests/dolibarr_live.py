"""A real Dolibarr on loopback for the tests: MariaDB and PHP's built-in server.

Dolibarr is on no package registry and its code never enters this repository:
the source tree comes from ``CRM_BRIDGE_DOLIBARR_SRC`` or the cache
(``~/.cache/crm-bridge/dolibarr/<version>/``, filled by ``make dolibarr-tree``).
PHP 8.2 and MariaDB come from Debian's packages, installed here when missing.

Installing Dolibarr (its own CLI installer, modules, users, rights) and filling
it through its REST API from ``crm_bridge.sample_data`` takes about a minute,
so it is done once into a MariaDB data directory kept in the cache under a key
of the tree's version, the generator's source and this file. Each instance
copies that directory, hard-links the tree (only ``conf/conf.php`` is its own)
and starts ``mariadbd`` and ``php -S`` in their own process groups; ``stop``
ends both groups, also after a failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import requests
from crm_bridge.adapters.tryton.sandbox import run_tool

from crm_bridge import sample_data
from crm_bridge.sample_data import Profile

SRC_ENV = "CRM_BRIDGE_DOLIBARR_SRC"
VERSION = "23.0.0-beta"  # the version `make dolibarr-tree` brings
PACKAGES = (
    "php8.2-cli",
    "php8.2-mysql",
    "php8.2-curl",
    "php8.2-xml",
    "php8.2-gd",
    "php8.2-intl",
    "php8.2-mbstring",
    "php8.2-soap",
    "php8.2-zip",
    "mariadb-server",
)
# A fixed end date: the data (and so the cached database) does not move daily.
PROFILE = Profile(customers=40, years=2, invoices_per_year=1.0, seed=7, end=dt.date(2025, 11, 30))
ADMIN_KEY = "crmbridgetestadminkey0123456789"
SYNC_KEY = "crmbridgetestsynckey0123456789ab"
SYNC_LOGIN = "crmbridge"
# What docs/adapters/dolibarr.md tells the admin to grant the sync user.
SYNC_RIGHTS = {
    121: "Read third parties",
    122: "Create/modify third parties",
    262: "Read all third parties (not only those linked to the user)",
    31: "Read products",
    11: "Read customer invoices",
    21: "Read commercial proposals",
}
MODULES = (
    "modSociete",
    "modProduct",
    "modService",
    "modFacture",
    "modPropale",
    "modCommande",
    "modBanque",
    "modAgenda",
    "modApi",
)
DB = "dolibarr"
Echo = Callable[[str], None]

SETUP_PHP = r"""<?php
// crm-bridge test fixture: modules, company, users and rights, from the CLI.
define('NOSESSION', '1');
define('NOREQUIREMENU', '1');
define('NOREQUIREHTML', '1');
define('EVEN_IF_ONLY_LOGIN_ALLOWED', '1');
$htdocs = $argv[1];
$config = json_decode(file_get_contents($argv[2]), true);
require_once $htdocs.'/master.inc.php';
require_once DOL_DOCUMENT_ROOT.'/core/lib/admin.lib.php';
require_once DOL_DOCUMENT_ROOT.'/user/class/user.class.php';
$user->fetch(1);
$user->loadRights();
foreach ($config['modules'] as $module) {
    $result = activateModule($module);
    if (!empty($result['errors'])) {
        fwrite(STDERR, "activateModule($module): ".implode('; ', $result['errors'])."\n");
        exit(1);
    }
}
foreach ($config['constants'] as $name => $value) {
    if (dolibarr_set_const($db, $name, $value, 'chaine', 0, '', 1) < 0) {
        fwrite(STDERR, "dolibarr_set_const($name) failed\n");
        exit(1);
    }
}
$sync = new User($db);
$sync->login = $config['sync_login'];
$sync->lastname = 'crm-bridge';
$sync->email = 'crm-bridge@example.com';
if ($sync->create($user) <= 0) {
    fwrite(STDERR, "creating user ".$config['sync_login'].": ".$sync->error."\n");
    exit(1);
}
foreach ($config['rights'] as $right) {
    if ($sync->addrights((int) $right) < 0) {
        fwrite(STDERR, "addrights($right): ".$sync->error."\n");
        exit(1);
    }
}
foreach ($config['keys'] as $login => $key) {
    $db->query("UPDATE ".MAIN_DB_PREFIX."user SET api_key = '".$db->escape($key)."'"
        ." WHERE login = '".$db->escape($login)."'");
}
print "ok\n";
"""


# -- finding the tree and the runtime -----------------------------------------
def cache_root() -> Path:
    base = os.environ.get("CRM_BRIDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crm-bridge"
    )
    return Path(base)


def find_tree() -> Path | None:
    """The Dolibarr source tree (the folder holding ``htdocs/``), or None."""
    candidates = []
    if os.environ.get(SRC_ENV):
        candidates.append(Path(os.environ[SRC_ENV]).expanduser())
    folder = cache_root() / "dolibarr"
    if folder.is_dir():
        candidates.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
    for tree in candidates:
        if (tree / "htdocs" / "filefunc.inc.php").is_file():
            return tree
    return None


SKIP_REASON = (
    f"no Dolibarr source tree: run `make dolibarr-tree` (or set {SRC_ENV}) "
    "to run the live Dolibarr tests"
)


def tree_version(tree: Path) -> str:
    text = (tree / "htdocs" / "filefunc.inc.php").read_text("utf-8", "replace")
    version = (tree / "htdocs" / "version.inc.php").read_text("utf-8", "replace")
    minor = re.search(r"define\('DOL_MINOR_VERSION',\s*'([^']+)'\)", text + version)
    major = re.search(r"define\('DOL_MAJOR_VERSION',\s*'([^']+)'\)", text + version)
    if not (major and minor):
        raise RuntimeError(f"{tree} does not look like a Dolibarr tree (no DOL_*_VERSION)")
    return f"{major.group(1)}.{minor.group(1)}"


def ensure_runtime() -> None:
    """PHP 8.2 and MariaDB from Debian's packages, installed when missing."""
    if shutil.which("php") and shutil.which("mariadbd") and shutil.which("mariadb-install-db"):
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(f"PHP or MariaDB is missing: apt-get install {' '.join(PACKAGES)}")
    quiet = {"DEBIAN_FRONTEND": "noninteractive"}
    run_tool(apt, "update", "-q", **quiet)
    run_tool(apt, "install", "-y", "-q", *PACKAGES, **quiet)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes ------------------------------------------------------------------
class Group:
    """A process started in its own process group; ``stop`` ends the whole group."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def stop(self, grace: float = 20) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                # the group may outlive its leader (php -S workers)
                os.killpg(self.proc.pid, 0)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        self.proc.poll()


def _wait(ready: Callable[[], bool], what: str, group: Group, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group.alive():
            raise RuntimeError(f"{what} exited at start:\n{group.tail()}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s:\n{group.tail()}")


class MariaDB:
    """A throwaway mariadbd on a free loopback port and its own socket."""

    def __init__(self, datadir: Path, run: Path, timezone: str = "UTC") -> None:
        """``timezone``: the server's system zone (its sessions' default time_zone,
        which Dolibarr never sets): where TIMESTAMP columns such as tms are shown."""
        self.datadir = datadir
        self.socket = run / "mariadb.sock"
        self.port = free_port()
        args = [
            shutil.which("mariadbd") or "mariadbd",
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-log-bin",
            f"--pid-file={run / 'mariadb.pid'}",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--skip-name-resolve",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        self.group = Group(args, run / "mariadb.log", {"TZ": timezone})
        _wait(self._ready, "mariadbd", self.group)

    def _ready(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            self.sql("SELECT 1")
        except RuntimeError:
            return False
        return True

    def sql(self, query: str, database: str | None = None) -> list[list[str | None]]:
        """Rows of ``query`` run as root over the socket (``None`` for SQL NULL)."""
        args = [shutil.which("mariadb") or "mariadb", "--no-defaults", f"--socket={self.socket}"]
        args += ["-uroot", "--batch", "--skip-column-names", "--raw"]
        if database:
            args.append(database)
        proc = subprocess.run(
            args, input=query, capture_output=True, text=True, timeout=60, check=False
        )
        if proc.returncode:
            raise RuntimeError(f"SQL failed: {proc.stderr.strip()}\n{query[:500]}")
        return [
            [None if v == "NULL" else v for v in line.split("\t")]
            for line in proc.stdout.splitlines()
        ]

    def stop(self) -> None:
        self.group.stop()


class PhpServer:
    """``php -S`` serving ``htdocs`` with four workers, in PHP's ``timezone``."""

    def __init__(self, htdocs: Path, run: Path, timezone: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            shutil.which("php") or "php",
            "-d",
            f"date.timezone={timezone}",
            "-d",
            "memory_limit=512M",
            "-d",
            "display_errors=0",
            "-d",
            "log_errors=1",
            "-d",
            f"error_log={run / 'php-errors.log'}",
            "-S",
            f"127.0.0.1:{self.port}",
            "-t",
            str(htdocs),
        ]
        self.group = Group(args, run / "php.log", {"PHP_CLI_SERVER_WORKERS": "4"})
        _wait(self._ready, "php -S", self.group)

    def _ready(self) -> bool:
        try:
            requests.get(f"{self.url}/api/index.php/status", timeout=2)
        except requests.RequestException:
            return False
        return True

    def stop(self) -> None:
        self.group.stop(grace=5)


# -- an instance ----------------------------------------------------------------
@dataclasses.dataclass
class Dolibarr:
    """One running Dolibarr; ``api`` talks to it with plain requests."""

    root: Path
    version: str
    timezone: str
    db: MariaDB
    php: PhpServer
    meta: dict[str, Any]

    @property
    def url(self) -> str:
        return self.php.url

    @property
    def api_url(self) -> str:
        return f"{self.php.url}/api/index.php"

    def api(
        self, method: str, path: str, key: str = ADMIN_KEY, ok: tuple[int, ...] = (200,), **kw: Any
    ) -> Any:
        r = requests.request(
            method, self.api_url + path, headers={"DOLAPIKEY": key}, timeout=120, **kw
        )
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        try:
            return r.json() if r.content else None
        except ValueError:
            raise RuntimeError(f"{method} {path}: not JSON: {r.text[:1000]}") from None

    def sql(self, query: str) -> list[list[str | None]]:
        return self.db.sql(query, DB)

    def restart_php(self) -> None:
        """Serve again after ``php.stop()``: a new ``php -S`` (another port; conf.php
        follows it), the same database."""
        htdocs, documents = self.root / "htdocs", self.root / "documents"
        conf = htdocs / "conf" / "conf.php"
        text = conf.read_text("utf-8")
        self.php = PhpServer(htdocs, self.root, self.timezone)
        conf.write_text(_conf(text, htdocs, documents, self.php.url, self.db.port))

    def config(self, path: Path, key: str = SYNC_KEY, extra: str = "", erp: str = "") -> Path:
        path.write_text(
            "[erp]\n"
            'adapter = "dolibarr"\n'
            f'url = "{self.api_url}"\n'
            f'api_key = "{key}"\n{erp}\n'
            f'[sync]\nas_of = "{self.meta.get("end") or PROFILE.end}"\n\n'
            '[state]\npath = "state.db"\n' + extra,
            "utf-8",
        )
        return path

    def stop(self) -> None:
        """Stop both process groups, then drop the copies (the logs stay)."""
        try:
            self.php.stop()
        finally:
            self.db.stop()
            for copy in ("datadir", "htdocs", "documents"):
                shutil.rmtree(self.root / copy, ignore_errors=True)


def _conf(template: str, htdocs: Path, documents: Path, url: str, db_port: int) -> str:
    values = {
        "url_root": url,
        "document_root": str(htdocs),
        "data_root": str(documents),
        "db_host": "127.0.0.1",
        "db_port": str(db_port),
        "prod": "0",
    }
    for key, value in values.items():
        template, n = re.subn(
            rf"^\$dolibarr_main_{key}\s*=.*$",
            f"$dolibarr_main_{key}='{value}';",
            template,
            flags=re.MULTILINE,
        )
        if n == 0:
            template = template.rstrip() + f"\n$dolibarr_main_{key}='{value}';\n"
    return template


def _layout(tree: Path, root: Path) -> tuple[Path, Path]:
    """A hard-linked copy of the tree's htdocs with its own conf dir, and a documents dir."""
    htdocs, documents = root / "htdocs", root / "documents"
    subprocess.run(["cp", "-al", str(tree / "htdocs"), str(htdocs)], check=True)
    conf = htdocs / "conf"
    shutil.rmtree(conf)
    conf.mkdir()
    documents.mkdir()
    return htdocs, documents


def _php(htdocs: Path, script: str, *args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [shutil.which("php") or "php", "-d", "date.timezone=UTC", script, *args],
        cwd=cwd or htdocs,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(
            f"php {script} {' '.join(args[:2])} failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout


def template_key(tree: Path, profile: Profile = PROFILE, rows: Path | None = None) -> str:
    """The cache key: the tree, this file, and the data (the generator's profile, or
    the canonical rows file loaded instead: tests/test_golden_dolibarr_live.py)."""
    h = hashlib.sha256()
    h.update(tree_version(tree).encode())
    h.update(resources.files("crm_bridge").joinpath("sample_data.py").read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(repr(dataclasses.astuple(profile)).encode() if rows is None else rows.read_bytes())
    return f"{_prefix(profile, rows)}{h.hexdigest()[:16]}"


def _prefix(profile: Profile, rows: Path | None) -> str:
    return f"{profile.customers}c-" if rows is None else f"rows-{rows.stem}-"


def template(
    tree: Path, echo: Echo = print, profile: Profile = PROFILE, rows: Path | None = None
) -> Path:
    """The cached, installed and filled Dolibarr (a MariaDB datadir and conf.php),
    filled from the generator's ``profile`` or from the canonical ``rows`` file."""
    ensure_runtime()
    target = cache_root() / "dolibarr-db" / template_key(tree, profile, rows)
    if (target / "meta.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f"{target.name}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.monotonic()
    echo(f"building the Dolibarr test database (once; cached in {target})")
    db = php = None
    try:
        datadir = work / "datadir"
        install_db = shutil.which("mariadb-install-db") or "mariadb-install-db"
        args = [install_db, "--no-defaults", f"--datadir={datadir}", "--skip-test-db"]
        args += ["--auth-root-authentication-method=normal"]
        if os.geteuid() == 0:
            args.append("--user=root")
        run_tool(*args)
        db = MariaDB(datadir, work)
        db.sql(
            f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            "CREATE USER 'dolibarr'@'127.0.0.1' IDENTIFIED BY 'dolibarr';"
            "CREATE USER 'dolibarr'@'localhost' IDENTIFIED BY 'dolibarr';"
            f"GRANT ALL ON {DB}.* TO 'dolibarr'@'127.0.0.1';"
            f"GRANT ALL ON {DB}.* TO 'dolibarr'@'localhost';"
        )
        inst = work / "instance"
        inst.mkdir()
        htdocs, documents = _layout(tree, inst)
        (htdocs / "conf" / "conf.php").write_text("")
        install = htdocs / "install"
        version = tree_version(tree)
        url = "http://127.0.0.1"
        _php(htdocs, "step1.php", "set", "en_US", str(htdocs), str(documents), url, "", "",
             "mysqli", "127.0.0.1", DB, "dolibarr", "dolibarr", str(db.port), "llx_", "", "",
             cwd=install)  # fmt: skip
        _php(htdocs, "step2.php", "set", "en_US", cwd=install)
        _php(htdocs, "step5.php", "0", version, "en_US", "set", "admin", "admin-pw-1234",
             "admin-pw-1234", cwd=install)  # fmt: skip
        (documents / "install.lock").write_text("")
        config = work / "setup.json"
        config.write_text(
            json.dumps(
                {
                    "modules": MODULES,
                    "constants": {
                        "MAIN_INFO_SOCIETE_COUNTRY": "2:BE:Belgium",
                        "MAIN_INFO_SOCIETE_NOM": "crm-bridge test company",
                        "MAIN_MONNAIE": "EUR",
                        "MAIN_DISABLE_PDF_AUTOUPDATE": "1",
                        "SOCIETE_CODECLIENT_ADDON": "mod_codeclient_leopard",
                        "API_LOGINS_ALLOWED_FOR_GET_EXTRAFIELDS": SYNC_LOGIN,
                    },
                    "sync_login": SYNC_LOGIN,
                    "rights": sorted(SYNC_RIGHTS),
                    "keys": {"admin": ADMIN_KEY, SYNC_LOGIN: SYNC_KEY},
                }
            )
        )
        setup = work / "setup.php"
        setup.write_text(SETUP_PHP)
        _php(htdocs, str(setup), str(htdocs), str(config))
        conf = (htdocs / "conf" / "conf.php").read_text("utf-8")
        php = PhpServer(htdocs, work, "UTC")
        instance = Dolibarr(work, version, "UTC", db, php, {})
        (htdocs / "conf" / "conf.php").write_text(_conf(conf, htdocs, documents, php.url, db.port))
        meta = seed(instance, echo, profile, rows)
        php.stop()
        db.stop()
        php = db = None
        final = work / "final"
        final.mkdir()
        shutil.move(str(datadir), final / "datadir")
        (final / "conf.php").write_text(conf)
        meta.update(version=version, seconds=round(time.monotonic() - started, 1))
        (final / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        final.rename(target)
        for old in target.parent.iterdir():  # this profile's databases of older trees or code
            prefix = _prefix(profile, rows)
            if old != target and old.name.startswith(prefix) and ".building-" not in old.name:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        for proc in (php, db):
            if proc is not None:
                proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    echo(f"Dolibarr test database built in {time.monotonic() - started:.0f} s")
    return target


def start(
    tree: Path,
    workdir: Path,
    timezone: str = "UTC",
    profile: Profile = PROFILE,
    rows: Path | None = None,
    db_timezone: str = "UTC",
) -> Dolibarr:
    """A running Dolibarr from the cached template, PHP in ``timezone``, MariaDB
    in ``db_timezone``."""
    cached = template(tree, echo=lambda m: print(m, flush=True), profile=profile, rows=rows)
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["cp", "-a", "--reflink=auto", str(cached / "datadir"), str(workdir / "datadir")],
        check=True,
    )
    htdocs, documents = _layout(tree, workdir)
    (documents / "install.lock").write_text("")
    db = MariaDB(workdir / "datadir", workdir, db_timezone)
    php = None
    try:
        conf = (cached / "conf.php").read_text("utf-8")
        # The URL holds php's port, which is known once it listens: write conf.php first
        # with a placeholder port, then again (Dolibarr reads it on every request).
        port_file = htdocs / "conf" / "conf.php"
        port_file.write_text(_conf(conf, htdocs, documents, "http://127.0.0.1", db.port))
        php = PhpServer(htdocs, workdir, timezone)
        port_file.write_text(_conf(conf, htdocs, documents, php.url, db.port))
        meta = json.loads((cached / "meta.json").read_text())
        return Dolibarr(workdir, tree_version(tree), timezone, db, php, meta)
    except BaseException:
        if php is not None:
            php.stop()
        db.stop()
        raise


# -- filling it through the REST API ------------------------------------------------
def _unix(day: Any) -> int:
    """A date as the unix time of its midnight in UTC (the fixture fills under UTC)."""
    d = day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)[:10])
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())


def seed(
    erp: Dolibarr, echo: Echo = print, profile: Profile = PROFILE, rows: Path | None = None
) -> dict[str, Any]:
    """Create the generator's (or the ``rows`` file's) customers, products, invoices
    (with payments: an invoice with several is paid in parts, the last closes it) and
    quotes through the REST API, one call at a time (concurrent creates collide).
    Cancelled invoices are left out (the REST API cannot abandon an invoice)."""
    from crm_bridge.adapters.tryton.seed import read_rows

    snap = read_rows(rows) if rows else sample_data.generate(profile)
    end = snap.as_of
    api = erp.api
    started = time.monotonic()
    bank = api(
        "POST",
        "/bankaccounts",
        json={
            "ref": "BANK",
            "label": "Bank",
            "type": 1,
            "courant": 1,
            "country_id": 2,
            "currency_code": "EUR",
            "date_solde": _unix(snap.invoices["date"].min() - dt.timedelta(days=30)),
        },
    )
    transfer = erp.sql("SELECT id FROM llx_c_paiement WHERE code = 'VIR'")[0][0]
    products: dict[str, int] = {}
    for row in snap.products.iter_rows(named=True):
        service = row["code"].startswith("S-")
        products[row["product_id"]] = api(
            "POST",
            "/products",
            json={
                "ref": row["code"],
                "label": row["name"],
                "type": 1 if service else 0,
                "price": row["list_price"],
                "price_base_type": "HT",
                "tva_tx": 0,
                "cost_price": row["cost_price"],
                "status": 1,
                "status_buy": 1,
            },
        )
    customers: dict[str, int] = {}
    for row in snap.customers.iter_rows(named=True):
        customers[row["customer_id"]] = api(
            "POST",
            "/thirdparties",
            json={
                "name": row["name"],
                "client": 1,
                "code_client": row["code"],
                "status": 1 if row["active"] else 0,
                "country_id": 2,
            },
        )
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in snap.invoice_lines.iter_rows(named=True):
        lines.setdefault(row["invoice_id"], []).append(row)
    cost = dict(zip(snap.products["product_id"], snap.products["cost_price"], strict=True))
    invoices: dict[str, int] = {}
    paid = payments = credit_notes = 0
    parts: dict[str, list[tuple[Any, float]]] = {}  # an invoice's payments, by date
    for row in snap.payments.sort("date").iter_rows(named=True):
        parts.setdefault(row["invoice_id"], []).append((row["date"], row["amount"]))
    source = {}  # a credit note's invoice: the generator credits the invoice of its first line
    for row in snap.invoices.iter_rows(named=True):
        if row["state"] == "cancelled":
            continue  # Dolibarr's REST API cannot abandon an invoice
        credit = row["kind"] == "credit_note"
        body: dict[str, Any] = {
            "socid": customers[row["customer_id"]],
            "type": 2 if credit else 0,
            "date": _unix(row["date"]),
            "date_lim_reglement": _unix(row["due_date"]),
            "ref_client": row["invoice_id"],
            "lines": [
                {
                    "fk_product": products[line["product_id"]],
                    "qty": abs(line["quantity"]),
                    "subprice": line["unit_price"],
                    "tva_tx": 0,
                    "product_type": 1 if line["product_id"] >= "P0000009" else 0,
                    "pa_ht": cost[line["product_id"]],
                }
                for line in lines.get(row["invoice_id"], [])
            ],
        }
        if credit:
            first = lines[row["invoice_id"]][0]["product_id"]
            body["fk_facture_source"] = source.get((row["customer_id"], first))
            if body["fk_facture_source"] is None:
                continue
        iid = api("POST", "/invoices", json=body)
        invoices[row["invoice_id"]] = iid
        for line in lines.get(row["invoice_id"], []):
            source[(row["customer_id"], line["product_id"])] = iid
        if row["state"] == "draft":
            continue
        api("POST", f"/invoices/{iid}/validate", json={"notrigger": 0})
        if credit:
            credit_notes += 1
        elif row["state"] == "paid":
            for day, amount in parts.get(row["invoice_id"], [])[:-1]:
                api(
                    "POST",
                    "/invoices/paymentsdistributed",
                    json={
                        "arrayofamounts": {str(iid): {"amount": str(amount)}},
                        "datepaye": _unix(day),
                        "paymentid": int(transfer or 2),
                        "closepaidinvoices": "no",
                        "accountid": bank,
                    },
                )
                payments += 1
            last = parts.get(row["invoice_id"], [(row["paid_date"], None)])[-1][0]
            api(  # the rest, closing the invoice
                "POST",
                f"/invoices/{iid}/payments",
                json={
                    "datepaye": _unix(last),
                    "paymentid": int(transfer or 2),
                    "closepaidinvoices": "yes",
                    "accountid": bank,
                },
            )
            paid += 1
            payments += 1
    quote_lines: dict[str, list[dict[str, Any]]] = {}
    for row in snap.sale_order_lines.iter_rows(named=True):
        quote_lines.setdefault(row["order_id"], []).append(row)
    quotes: dict[str, int] = {}
    orders = 0
    for row in snap.sale_orders.iter_rows(named=True):
        body = {
            "socid": customers[row["customer_id"]],
            "date": _unix(row["date"]),
            "duree_validite": 30,
            "lines": [
                {
                    "fk_product": products[line["product_id"]],
                    "qty": line["quantity"],
                    "subprice": round(line["amount"] / line["quantity"], 2),
                    "tva_tx": 0,
                }
                for line in quote_lines.get(row["order_id"], [])
            ],
        }
        pid = api("POST", "/proposals", json=body)
        quotes[row["order_id"]] = pid
        api("POST", f"/proposals/{pid}/validate", json={"notrigger": 0})
        if row["state"] in ("confirmed", "cancelled"):
            status = 2 if row["state"] == "confirmed" else 3
            api("POST", f"/proposals/{pid}/close", json={"status": status, "note_private": ""})
        if row["state"] == "confirmed":  # a signed proposal becomes an order
            oid = api("POST", "/orders", json={**body, "date": _unix(row["date"])})
            api("POST", f"/orders/{oid}/validate", json={"notrigger": 0})
            orders += 1
    echo(
        f"filled Dolibarr through its API in {time.monotonic() - started:.0f} s: "
        f"{len(customers)} customers, {len(invoices)} invoices ({paid} paid), "
        f"{len(quotes)} proposals, {orders} orders"
    )
    return {
        "customers": customers,
        "products": products,
        "invoices": invoices,
        "quotes": quotes,
        "paid": paid,
        "payments": payments,
        "credit_notes": credit_notes,
        "orders": orders,
        "end": str(end),
    }


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="crm-bridge-dolibarr-"))
