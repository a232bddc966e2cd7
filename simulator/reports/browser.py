"""Headless Chromium: print a report to PDF, take a screenshot, dump the loaded DOM.

The browser is found on ``$SERVESIM_CHROMIUM`` or the PATH (``chromium``,
``chromium-browser``, ``google-chrome``); Debian installs it with
``apt-get install chromium`` (see ``.ci/install-chromium.sh``). Every run uses a fresh
profile directory and no network features, so it works offline and in containers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from simulator.errors import UserError

CHROMIUM_ENV = "SERVESIM_CHROMIUM"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags for a quiet, offline, sandbox-free headless run (containers run as root).
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
#: Seconds a browser run may take before it is stopped.
BROWSER_TIMEOUT_S = 120


def find_chromium() -> str | None:
    """Path of a Chromium-family browser, or None when none is installed."""
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen:
        return chosen if Path(chosen).is_file() else shutil.which(chosen)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The browser's path, or a ``UserError`` saying how to get one."""
    browser = find_chromium()
    chosen = os.environ.get(CHROMIUM_ENV)
    if browser is None and chosen:
        raise UserError(
            f"--pdf: {CHROMIUM_ENV}={chosen!r} is neither a file nor a program on the PATH; "
            "set it to the browser's path"
        )
    if browser is None:
        raise UserError(
            "--pdf needs Chromium: install it (Debian: apt-get install chromium) or set "
            f"{CHROMIUM_ENV} to the browser's path"
        )
    return browser


def _run(args: list[str]) -> subprocess.CompletedProcess:
    browser = require_chromium()
    with tempfile.TemporaryDirectory(prefix="servesim-chromium-") as profile:
        command = [browser, *HEADLESS_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"{browser} did not finish in {BROWSER_TIMEOUT_S} s") from None
        except OSError as exc:  # not executable, not a program: the browser, not the output
            raise UserError(
                f"--pdf: cannot run the browser {browser!r} ({exc.strerror or exc}); install "
                f"Chromium or set {CHROMIUM_ENV} to its path"
            ) from None


def print_to_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Print ``html_path`` to ``pdf_path`` (A4, the page's print CSS, no header/footer)."""
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    if pdf_path.exists():
        pdf_path.unlink()
    done = _run(
        [
            f"--print-to-pdf={pdf_path.resolve()}",
            "--no-pdf-header-footer",
            "--virtual-time-budget=5000",
            Path(html_path).resolve().as_uri(),
        ]
    )
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        # the path written is a temporary one beside the output: the browser is named instead
        raise UserError(f"--pdf: the browser wrote no PDF ({' | '.join(tail) or 'no message'})")
    return pdf_path


def screenshot(html_path: Path, png_path: Path, width: int = 1200, height: int = 2000) -> Path:
    """A PNG of the page's top ``width × height`` pixels."""
    png_path = Path(png_path)
    done = _run(
        [
            f"--screenshot={png_path.resolve()}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            Path(html_path).resolve().as_uri(),
        ]
    )
    if not png_path.is_file():
        raise UserError(f"{png_path}: the browser wrote no screenshot ({done.stderr[-300:]})")
    return png_path


def dump_dom(html_path: Path, width: int = 1200) -> tuple[str, str]:
    """(the DOM after load scripts ran, the browser's stderr with console messages)."""
    done = _run(
        [
            "--dump-dom",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},2000",
            "--virtual-time-budget=5000",
            Path(html_path).resolve().as_uri(),
        ]
    )
    return done.stdout, done.stderr
