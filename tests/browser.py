"""What the browser test needs, installed by the test itself: Debian's Chromium and
ChromeDriver (``apt-get install chromium chromium-driver``) when they are missing.
The Tryton web client comes from ``crm_bridge.adapters.tryton.sandbox.web_client``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from crm_bridge.adapters.tryton.sandbox import web_client as sao_root

__all__ = ["chromium", "sao_root"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _run(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def chromium() -> tuple[Path, Path]:
    """Chromium and ChromeDriver, installed from Debian's packages when missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise RuntimeError("Chromium is missing: apt-get install chromium chromium-driver")
        try:
            _run(
                apt, "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"
            )
        except RuntimeError:
            _run(apt, "update", "-q")
            _run(
                apt, "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"
            )
    return CHROMIUM, CHROMEDRIVER
