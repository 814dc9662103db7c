"""Where the browser tests put their screenshots.

A test run writes them to a temporary folder (tests modify no tracked file), or to
``$DEBITURA_SCREENSHOT_DIR``; ``make screenshots`` sets it to ``docs/images/`` and runs the browser tests, which
retakes the pictures in the README and the docs from the real UI.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path


@cache
def screenshot_dir() -> Path:
    """The folder, created if missing."""
    configured = os.environ.get("DEBITURA_SCREENSHOT_DIR")
    folder = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="debitura-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
