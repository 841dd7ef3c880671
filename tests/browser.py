"""What the browser test needs, installed by the test itself: Debian's Chromium and
ChromeDriver (``apt-get install chromium chromium-driver``) when they are missing.
The Tryton web client comes from ``crm_bridge.adapters.tryton.sandbox.web_client``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from crm_bridge.adapters.tryton.sandbox import run_tool
from crm_bridge.adapters.tryton.sandbox import web_client as sao_root

__all__ = ["chinese_font", "chromium", "sao_root"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# A font with Chinese characters (Debian's fonts-wqy-microhei, 4 MB), for the zh_CN screenshot.
CHINESE_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def chromium() -> tuple[Path, Path]:
    """Chromium and ChromeDriver, installed from Debian's packages when missing."""
    _apt_install(CHROMIUM.exists() and CHROMEDRIVER.exists(), "chromium", "chromium-driver")
    return CHROMIUM, CHROMEDRIVER


def chinese_font() -> Path:
    """A font that draws Chinese, installed from Debian's packages when missing."""
    _apt_install(CHINESE_FONT.exists(), "fonts-wqy-microhei")
    return CHINESE_FONT


def _apt_install(present: bool, *packages: str) -> None:
    if not present:
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise RuntimeError(f"missing: apt-get install {' '.join(packages)}")
        install = (
            apt,
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            *packages,
        )
        quiet = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            run_tool(*install, **quiet)
        except RuntimeError:  # the package lists may be missing or stale
            run_tool(apt, "update", "-q", **quiet)
            run_tool(*install, **quiet)
