"""``crm-bridge demo``: the README's main job, end to end (the template comes from the cache)."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from .conftest import crm_in_sqlite
from .test_cli_errors import run


def _printed_table(out: str, title: str) -> dict[str, int]:
    """The rows (label, customers) of a table the demo printed under ``title`` (which
    the terminal may have wrapped)."""
    found = re.search(r"\s+".join(map(re.escape, title.split())), out)
    assert found, f"no table {title!r} in the demo's output"
    lines = out[found.end() :].splitlines()
    rows: dict[str, int] = {}
    for line in lines[1:]:
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if len(cells) == 2 and cells[1].isdigit():
            rows[cells[0]] = int(cells[1])
        elif rows and not cells:  # the table's bottom edge
            break
    return rows


def test_demo_runs_end_to_end_and_says_how_to_look(tryton_template: Path, tmp_path: Path) -> None:
    proc = run("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert re.search(r"wrote (\d+) customers in \d+ journaled batch\(es\); run 1: ok", out)
    wrote = int(re.search(r"wrote (\d+) customers", out).group(1))
    assert wrote > 250

    # The numbers printed are what the demo's database holds, read raw (SQL).
    stored, keys, _ = crm_in_sqlite(tmp_path / "demo" / "demo.sqlite")
    assert wrote == len(stored)
    for name, title in (
        ("rfm_segment", "Customers per RFM segment"),
        ("abc_xyz", "Customers per ABC/XYZ class"),
        ("loyalty_tier", "Customers per Loyalty tier"),
    ):
        labels = dict(
            line.split(":", 1) for line in keys[name]["selection"].splitlines() if ":" in line
        )
        held = Counter(labels[v[name]].strip() for v in stored.values() if name in v)
        if without := wrote - sum(held.values()):  # customers written without this key
            held["(none)"] = without
        assert _printed_table(proc.stdout, title) == dict(held), title
    for title in (
        "Customers per RFM segment",
        "Customers per ABC/XYZ class",
        "Customers per Loyalty tier",
    ):
        assert title in out
    assert "Champions" in out and "Gold" in out
    assert "database 'demo', user 'admin', password 'admin'" in out
    assert "34 field definitions provisioned" in proc.stderr
    translated = re.search(r"(\d+) translated into ru, lv, zh_CN", proc.stderr)
    assert translated and int(translated.group(1)) == 3 * 34, proc.stderr
    assert (tmp_path / "demo" / "state.db").exists()
    page = (tmp_path / "demo" / "report.html").read_text("utf-8")
    assert "<h2>ABC Pareto curve</h2>" in page and "<svg" in page
    assert (tmp_path / "demo" / "report.xlsx").stat().st_size > 10_000


def test_demo_keep_running_serves_the_web_client(tryton_template: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    import requests

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crm_bridge",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--keep-running",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Web client: "):
                url = line.split()[2]
                break
        assert url and "/#demo/model/party.party" in url, "no web client URL printed"
        page = requests.get(url.split("#")[0], timeout=30)
        assert page.status_code == 200 and "tryton-sao.js" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0


def test_demo_keep_running_stops_its_tryton_on_sigterm(
    tryton_template: Path, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from .leftovers import children, group_alive

    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_bridge", "demo", "--dir", str(tmp_path), "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    trytond: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Tryton keeps running"):
                break
        trytond = [pid for pid, cmd in children(proc.pid).items() if "trytond" in cmd]
        assert len(trytond) == 1, "the demo runs one trytond, its child"
        assert os.getpgid(trytond[0]) == trytond[0]  # in its own process group
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        left = [pid for pid in trytond if group_alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in trytond:  # whatever the outcome, leave nothing behind
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    assert left == [], "SIGTERM to the demo left its trytond running"
    assert code == 128 + signal.SIGTERM
