"""``crm-bridge demo``: the README's main job, end to end (the template comes from the cache)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .test_cli_errors import run


def test_demo_runs_end_to_end_and_says_how_to_look(tryton_template: Path, tmp_path: Path) -> None:
    proc = run("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert re.search(r"wrote (\d+) customers in \d+ journaled batch\(es\); run 1: ok", out)
    assert int(re.search(r"wrote (\d+) customers", out).group(1)) > 250
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
