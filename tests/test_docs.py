"""The documentation runs: ```bash runnable``` blocks run in bash (``servesim`` at small
sizes), ```python runnable``` blocks run through exec, and the generated reference pages
are up to date."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import cli_server

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(bash|python) runnable[^\n]*\n(.*?)^```", re.M | re.S)


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(language: str) -> list[tuple[Path, int, str]]:
    found = []
    for page in doc_pages():
        text = page.read_text()
        for match in BLOCK.finditer(text):
            if match.group(1) == language:
                line = text[: match.start()].count("\n") + 1
                found.append((page, line, match.group(2)))
    return found


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch folder seeing the repository's workloads and catalog, with ``servesim`` on
    the PATH running each command in a fork of one warm process (``tests/cli_server.py``)."""
    for name in ("workloads", "hardware_specs"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SERVESIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    socket_path = Path(tempfile.mkdtemp(prefix="servesim")) / "cli.sock"  # paths <= 108 bytes
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "cli_server.py"), socket_path])
    shim = bin_dir / "servesim"
    shim.write_text(cli_server.client_script(socket_path))
    shim.chmod(0o755)
    for _ in range(600):  # the server is up once its socket exists
        if socket_path.exists() or server.poll() is not None:
            break
        time.sleep(0.1)
    assert socket_path.exists(), "the servesim server did not start"
    yield tmp_path
    cli_server.stop(socket_path)
    server.wait(timeout=30)
    shutil.rmtree(socket_path.parent, ignore_errors=True)


def _id(item: tuple[Path, int, str]) -> str:
    return f"{item[0].relative_to(DOCS)}:{item[1]}"


BASH = blocks("bash")
PYTHON = blocks("python")


def test_docs_have_runnable_examples():
    assert len(BASH) >= 8 and len(PYTHON) >= 2
    pages = {p.relative_to(DOCS).as_posix() for p, _, _ in BASH + PYTHON}
    assert "tutorial.md" in pages


@pytest.mark.slow
def test_pages_by_page_run_in_order(workdir):
    """Blocks of one page build on each other (a file written, then used): run each page's
    blocks in order in one folder."""
    by_page: dict[Path, list[tuple[str, int, str]]] = {}
    for page, line, code in sorted(
        [(p, n, ("bash", c)) for p, n, c in BASH] + [(p, n, ("python", c)) for p, n, c in PYTHON]
    ):
        by_page.setdefault(page, []).append((code[0], line, code[1]))
    failures = []
    for page, items in by_page.items():
        folder = workdir / page.stem
        folder.mkdir(exist_ok=True)
        for name in ("workloads", "hardware_specs"):
            if not (folder / name).exists():
                (folder / name).symlink_to(ROOT / name)
        namespace: dict = {}
        for language, line, code in items:
            where = f"{page.relative_to(DOCS)}:{line}"
            if language == "bash":
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", code],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if done.returncode != 0:
                    failures.append(f"{where}: exit {done.returncode}\n{done.stderr[-2000:]}")
            else:
                cwd = os.getcwd()
                os.chdir(folder)
                try:
                    exec(compile(code, where, "exec"), namespace)
                except Exception as exc:
                    failures.append(f"{where}: {type(exc).__name__}: {exc}")
                finally:
                    os.chdir(cwd)
    assert not failures, "\n\n".join(failures)


def test_reference_pages_are_up_to_date():
    done = subprocess.run(
        [sys.executable, str(DOCS / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


#: Pages other parts of the project write (``docs/validation.md``: benchmarks/validation.py);
#: links to them are checked once they exist.
WRITTEN_ELSEWHERE = {DOCS / "validation.md"}


def test_internal_links_resolve():
    broken = []
    for page in doc_pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve()
            if not path.exists() and path not in WRITTEN_ELSEWHERE:
                broken.append(f"{page.relative_to(DOCS)} -> {target}")
    assert not broken, broken
