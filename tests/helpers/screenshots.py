"""Where the browser tests put their screenshots: ``docs/images/`` (so the pictures in the README and the
docs are retaken from the real UI on every run and cannot rot), or ``$DEBITURA_SCREENSHOT_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def screenshot_dir() -> Path:
    """The folder, created if missing."""
    folder = Path(os.environ.get("DEBITURA_SCREENSHOT_DIR") or ROOT / "docs" / "images")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
