"""What the browser test needs, installed by the test itself: Debian's Chromium and
ChromeDriver (``apt-get install chromium chromium-driver``) when they are missing.
The Tryton web client comes from ``crm_bridge.adapters.tryton.sandbox.web_client``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from crm_bridge.adapters.tryton.sandbox import run_tool
from crm_bridge.adapters.tryton.sandbox import web_client as sao_root

__all__ = ["chromium", "sao_root"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium() -> tuple[Path, Path]:
    """Chromium and ChromeDriver, installed from Debian's packages when missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise RuntimeError("Chromium is missing: apt-get install chromium chromium-driver")
        install = (
            apt,
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        )
        quiet = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            run_tool(*install, **quiet)
        except RuntimeError:  # the package lists may be missing or stale
            run_tool(apt, "update", "-q", **quiet)
            run_tool(*install, **quiet)
    return CHROMIUM, CHROMEDRIVER
