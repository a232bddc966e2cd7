"""Reading the files a user hands us, safely: one reader for YAML and one for JSON.

Before a file is opened it must be a regular file (a folder, a named pipe or a device is
named as such, never waited on or read forever) of bounded size; its text must be UTF-8.
YAML is parsed with the safe loader and bounded: a key given twice in one mapping is an
error naming both lines, aliases may not expand to more than ``MAX_YAML_VALUES`` values
(a "billion laughs" file is refused before it is expanded) nor refer to themselves.
JSON rejects duplicate keys, ``NaN``/``Infinity`` and absurdly long numbers. Every problem
is a :class:`UserError` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import UserError

#: Largest YAML or JSON file read (bytes): scenarios, GPU, link, calibration files and
#: model configs are a few kB; long sample lists belong in a ``file:`` of their own.
MAX_CONFIG_BYTES = 1024 * 1024
#: Most values (scalars, lists and mappings) a YAML document may hold once its aliases
#: are expanded.
MAX_YAML_VALUES = 1_000_000
#: Names and paths longer than this are shown shortened in messages.
SHOWN_CHARS = 120

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


def shown(text: object) -> str:
    """``text`` for a message: long names shortened (their length stated), repr-quoted."""
    text = str(text)
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    half = SHOWN_CHARS // 2
    return repr(text[:half] + "…" + text[-half:]) + f" ({len(text):,} characters)"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None if stat.S_ISREG(mode) else "not a regular file"


def stat_error(path: str | Path, exc: OSError, what: str) -> UserError:
    """A one-line UserError for an OSError met on ``path``."""
    name = shown(path)
    if exc.errno == errno.ENOENT:
        return UserError(f"{what} {name} does not exist")
    if exc.errno == errno.ENAMETOOLONG:
        return UserError(f"{what} {name}: the name is too long for a file name")
    if exc.errno == errno.ENOTDIR:
        return UserError(f"{what} {name} does not exist (a part of its path is a file)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UserError(f"{what} {name}: permission denied")
    return UserError(f"{what} {name}: cannot be read ({exc.strerror or exc})")


def input_file(path: str | Path, what: str) -> Path:
    """``path`` if it is an existing regular file we may read; else a UserError saying
    what it is (missing, a folder, a named pipe, a device, a name too long)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise stat_error(path, exc, what) from None
    except ValueError:  # an embedded NUL character
        raise UserError(f"{what} {shown(path)}: not a valid file name") from None
    kind = _kind(mode)
    if kind is not None:
        raise UserError(f"{what} {shown(path)} is {kind}, not a file")
    return path


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def read_text(path: str | Path, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (a BOM is dropped)."""
    path = input_file(path, what)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise stat_error(path, exc, what) from None
    if len(data) > max_bytes:
        raise UserError(
            f"{path}: {what} is larger than {max_bytes / 2**20:g} MiB, the most read for "
            "this kind of file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(data, exc.start)
        byte = data[exc.start : exc.start + 1].hex()
        raise UserError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{byte}); save the {what} as UTF-8"
        ) from None


# ----------------------------------------------------------------------------- YAML
class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first, mark):
        where = f"line {first.line + 1}" if first.line != mark.line else "this line"
        super().__init__(f"key {key!r} given twice (first at {where}, column {first.column + 1})")
        self.mark = mark


class _BoundedLoader(_Loader):
    """The safe loader, refusing a key given twice in one mapping (YAML's ``<<`` merge
    keys, which exist to be overridden, excepted)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    if key in seen:
                        raise _DuplicateKey(key, seen[key], key_node.start_mark)
                    seen[key] = key_node.start_mark
                except TypeError:
                    continue  # an unhashable key: the constructor reports it
        return super().construct_mapping(node, deep=deep)


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root, source: str) -> None:
    """Refuse a document whose aliases expand past ``MAX_YAML_VALUES`` values or refer
    to a node that contains them (computed on the node graph, nothing is expanded)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_VALUES:
                mark = node.start_mark
                raise UserError(
                    f"{source}:{mark.line + 1}: aliases here expand to more than "
                    f"{MAX_YAML_VALUES:,} values"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            mark = node.start_mark
            raise UserError(f"{source}:{mark.line + 1}: an alias refers to a node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _value_problem(exc: ValueError) -> str:
    if "digits" in str(exc):  # Python refuses to convert integers of over 4300 digits
        return f"a number of more than {4300:,} digits"
    return str(exc).replace("\n", " ")


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely and within bounds; ``source`` names it in errors."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:  # an alias needs a "*": without one, nothing can expand
            _check_expansion(node, source)
        return loader.construct_document(node)
    except _DuplicateKey as exc:
        mark = exc.mark
        raise UserError(f"{source}:{mark.line + 1}:{mark.column + 1}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}{where}: not valid YAML ({problem})".replace("\n", " ")) from None
    except ValueError as exc:
        raise UserError(f"{source}: not valid YAML ({_value_problem(exc)})") from None
    except RecursionError:
        raise UserError(f"{source}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The parsed YAML of a file (see :func:`read_text` and :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, what), str(path))


# ----------------------------------------------------------------------------- JSON
def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_line_of(text: str, key: str) -> list[int]:
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    return [text.count("\n", 0, m.start()) + 1 for m in pattern.finditer(text)]


def parse_json(text: str, source: str) -> Any:
    """Parse JSON text: duplicate keys, NaN/Infinity and over-long numbers are errors."""
    duplicate: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out and not duplicate:
                duplicate.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise UserError(f"{source}: not valid JSON ({_value_problem(exc)})") from None
    except RecursionError:
        raise UserError(f"{source}: not valid JSON (nested too deeply)") from None
    if duplicate:
        lines = _json_line_of(text, duplicate[0])
        where = f" (lines {lines[0]} and {lines[1]})" if len(lines) >= 2 else ""
        raise UserError(f"{source}: key {duplicate[0]!r} given twice{where}")
    return data


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of a file (see :func:`read_text` and :func:`parse_json`)."""
    return parse_json(read_text(path, what), str(path))
