"""Output paths: checked before any work starts, written whole or not at all.

Policy: an output file that exists is replaced only with ``--force`` (an output folder,
only when it holds none of the files a command writes, or with ``--force``); missing
folders are created; a path that is a folder where a file is wanted (or the reverse), a
device or named pipe, or a folder that cannot be written in is an error before the
command does anything. Files are written to a temporary name in the same folder and
renamed into place when complete, so an interrupted command leaves no partial output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from simulator.errors import UserError
from simulator.specs.files import shown, stat_error


def _mode(path: Path, option: str) -> int | None:
    """``st_mode`` of ``path``, None when nothing is there."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # reported by _writable_folder: a part of the path is a file
    except OSError as exc:
        raise stat_error(path, exc, option) from None


def _writable_folder(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we can create in."""
    parent = path.parent if str(path.parent) else Path(".")
    while True:
        mode = _mode(parent, option)
        if mode is not None:
            break
        if parent == parent.parent:
            raise UserError(f"{option} {shown(path)}: no existing folder above it")
        parent = parent.parent
    if not stat.S_ISDIR(mode):
        raise UserError(f"{option} {shown(path)}: {shown(parent)} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".servesim-probe-", dir=parent)
    except OSError as exc:
        reason = "read-only" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else None
        raise UserError(
            f"{option} {shown(path)}: cannot write in {shown(str(parent))} "
            f"({reason or exc.strerror})"
        ) from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(path: str | Path, option: str, *, force: bool = False) -> Path:
    """Fail now if ``path`` could not be written as a file (see the module's policy)."""
    path = Path(path)
    mode = _mode(path, option)
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise UserError(f"{option} {shown(path)} is a folder; give a file name")
        if not stat.S_ISREG(mode):
            raise UserError(f"{option} {shown(path)} is not a regular file; give a file name")
        if not force:
            raise UserError(f"{option} {shown(path)} exists; pass --force to replace it")
    _writable_folder(path, option)
    return path


def check_suffix(
    path: Path, option: str, suffixes: tuple[str, ...], what: str, *, gzipped: bool = False
) -> None:
    """Refuse an output name whose extension promises another format than ``what``, the one
    written (``gzipped``: a final ``.gz`` is allowed and looked past)."""
    names = [s for s in path.suffixes if not (gzipped and s == ".gz")]
    given = names[-1] if names else ""
    if given.lower() not in suffixes:
        also = ", optionally gzipped (.gz)" if gzipped else ""
        raise UserError(
            f"{option} {path}: written as {what}; name it {' or '.join(suffixes)}{also} "
            f"(got {given or 'no extension'})"
        )


def check_output_folder(
    path: str | Path, option: str, names: tuple[str, ...], *, force: bool = False
) -> Path:
    """Fail now if the folder ``path`` could not receive ``names`` (see the policy)."""
    path = Path(path)
    mode = _mode(path, option)
    if mode is None:
        _writable_folder(path, option)
        return path
    if not stat.S_ISDIR(mode):
        raise UserError(f"{option} {shown(path)} is a file, not a folder")
    present = [name for name in names if (path / name).exists()]
    if present and not force:
        raise UserError(
            f"{option} {shown(path)} already holds {', '.join(present)}; pass --force to "
            "replace them"
        )
    _writable_folder(path / names[0], option)
    return path


def _temporary(path: Path) -> Path:
    # Same folder (the rename is atomic), same suffixes (writers choose the format by them).
    return path.with_name(f".partial-{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "output") -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed to ``path`` when the block
    ends normally, removed when it raises (or is interrupted)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        message = f"{option} {shown(path)}: cannot create its folder ({exc.strerror})"
        raise UserError(message) from None
    temporary = _temporary(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise UserError(f"{option} {shown(path)}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_atomic(path: str | Path, write: Callable[[Path], object], option: str = "output") -> Path:
    """``write(temporary_path)``, then rename it to ``path`` (see :func:`atomic_path`)."""
    with atomic_path(path, option) as temporary:
        write(temporary)
    return Path(path)


def add_force_argument(parser) -> None:
    """``--force``: replace existing output files."""
    parser.add_argument(
        "--force", action="store_true", help="replace output files that already exist"
    )
