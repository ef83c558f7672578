"""The system Chromium (Debian's ``chromium``, /usr/bin/chromium) driven by the ``playwright`` package, for the
tests that render pages: nothing is downloaded; skipped with the reason when either is missing."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = os.environ.get("CLFKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root, in a machine whose network is closed: no sandbox, no GPU, and none of the background connections
# Chromium would otherwise try (and have refused) at every start.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CLFKIT_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()
