"""Read a scenario YAML safely, apply ``--set`` overrides, report every error at once."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from simulator.config.scenario import Scenario
from simulator.errors import UnknownNameError, UserError
from simulator.specs.files import parse_yaml, read_yaml
from simulator.specs.strict import validation_messages

#: What ``overrides`` may be: one ``"dotted.key=value"`` string (the value read as YAML), a
#: list of them, or a ``{"dotted.key": value}`` mapping (values taken as given).
Overrides = str | list[str] | tuple[str, ...] | Mapping[str, Any] | None


def _given(value: Any) -> str:
    """``value`` for a message about a wrong argument: its type and a short repr."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if value is None else f"{type(value).__name__} {text}"


def refuse(where: str, argument: str, expected: str, value: Any, hint: str = "") -> NoReturn:
    """Raise the UserError of a wrong argument: the call, the argument, what is allowed
    and what was given (and ``hint``, what to do instead)."""
    prefix = f"{where}: " if where else ""
    tail = f"; {hint}" if hint else ""
    raise UserError(f"{prefix}{argument}: expected {expected}, got {_given(value)}{tail}")


#: What a function taking a validated scenario expects, and where one comes from.
SCENARIO_EXPECTED = (
    "a Scenario (load_scenario(path) reads a file, scenario_from_dict(data) a mapping)"
)


def require_scenario(value: Any, where: str = "") -> Scenario:
    """``value`` when it is a Scenario, else a UserError naming ``where``."""
    if not isinstance(value, Scenario):
        refuse(where, "scenario", SCENARIO_EXPECTED, value)
    return value


def as_scenario(value: Any, where: str = "") -> Scenario:
    """A Scenario given, or the one read from a scenario file path (str or Path)."""
    if isinstance(value, Scenario):
        return value
    if isinstance(value, str | PathLike):
        return load_scenario(value)
    refuse(where, "scenario", "a Scenario or a scenario file path (str or Path)", value)


def scenario_path(value: Any, where: str = "load_scenario") -> Path:
    """``value`` as a Path, or a UserError naming ``where`` unless it is a str or a Path."""
    try:
        return Path(value)
    except TypeError:
        hint = "scenario_from_dict(data) validates a mapping" if isinstance(value, dict) else ""
        refuse(where, "path", "a scenario file path (str or Path)", value, hint)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"engine.max_num_seqs=128"`` -> (["engine", "max_num_seqs"], 128); the value is YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected dotted.key=value, e.g. engine.max_num_seqs=128")
    value = parse_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    return [part for part in key.strip().split(".")], value


def _list_index(items: list, part: str, parts: list[str]) -> int:
    """The position ``part`` names in a list reached by ``parts`` (``fleet.0``)."""
    if not part.isdigit() or int(part) >= len(items):
        where = ".".join(parts[:-1])
        raise UserError(
            f"--set {'.'.join(parts)}: {where} is a list of {len(items)}; name an item by its "
            f"position, 0 to {len(items) - 1} (got {part!r})"
        )
    return int(part)


def set_dotted(data: dict, key: str | list[str], value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for the key ``"a.b"`` (or ``["a", "b"]``), creating
    sections as needed; a number names an item of a list (``fleet.0.replicas``)."""
    parts = key.split(".") if isinstance(key, str) else key
    node: dict | list = data
    for depth, part in enumerate(parts):
        place = _list_index(node, part, parts[: depth + 1]) if isinstance(node, list) else part
        if depth == len(parts) - 1:
            node[place] = value
            return
        child = node[place] if isinstance(node, list) else node.get(place)
        if not isinstance(child, dict | list):
            child = {}
            node[place] = child
        node = child


def with_settings(scenario: Scenario, settings: Overrides, source: str = "<scenario>") -> Scenario:
    """``scenario`` with user-given ``dotted.key: value`` settings (as ``--set`` gives them;
    any form of ``Overrides``): each key and value is checked like the scenario file, and
    errors name ``source`` (the scenario file, where there is one) and the key."""
    items = override_items(settings, "settings")
    if not items:
        return scenario
    data = scenario.model_dump(mode="json", exclude_unset=True)
    return scenario_from_dict(_set_all(data, items), source=source, base_dir=scenario.base_dir)


def _mapping_key(key: Any, argument: str) -> list[str]:
    """The parts of a ``{"dotted.key": value}`` key; a UserError unless a non-empty str."""
    if not isinstance(key, str) or not key.strip():
        refuse("", f"{argument} key", "a 'dotted.key' string", key)
    return key.strip().split(".")


def override_items(overrides: Overrides, argument: str = "overrides") -> list[tuple[list, Any]]:
    """(key parts, value) of every override (see ``Overrides``); None or an empty string,
    list or mapping is none; anything else is a UserError naming ``argument``."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [parse_override(overrides)] if overrides else []
    if isinstance(overrides, Mapping):
        return [(_mapping_key(k, argument), copy.deepcopy(v)) for k, v in overrides.items()]
    if not isinstance(overrides, list | tuple):
        expected = "a 'dotted.key=value' string, a list of them or a {'dotted.key': value} mapping"
        refuse("", argument, expected, overrides)
    for text in overrides:
        if not isinstance(text, str):
            refuse("", f"{argument} item", "a 'dotted.key=value' string", text)
    return [parse_override(text) for text in overrides]


def _set_all(data: dict, items: list[tuple[list, Any]]) -> dict:
    for path, value in items:
        set_dotted(data, path, value)
    return data


def apply_overrides(data: dict, overrides: Overrides) -> dict:
    """Set each override (see ``Overrides``) in a nested dict (creating sections as needed)."""
    return _set_all(data, override_items(overrides))


def _catalog_errors(data: dict) -> list[str]:
    from simulator.specs.catalog import load_gpu, load_link, load_model

    errors: list[str] = []
    hardware = data.get("hardware") if isinstance(data.get("hardware"), dict) else {}
    checks = [
        ("model", data.get("model"), load_model),
        ("hardware.gpu", hardware.get("gpu"), load_gpu),
        ("hardware.interconnect", hardware.get("interconnect"), load_link),
    ]
    for field, value, loader in checks:
        if isinstance(value, str):
            try:
                loader(value)
            except UnknownNameError as exc:
                errors.append(f"{field}: {exc}")
            except UserError as exc:
                errors.extend(f"{field}: {m}" for m in exc.messages)
    return errors


def scenario_from_dict(
    data: Any, *, source: str = "<scenario>", base_dir: Path | None = None
) -> Scenario:
    """Validate a scenario mapping; raise UserError listing every problem with its dotted path.
    Relative paths in it resolve from ``base_dir`` (default: the working directory)."""
    if not isinstance(data, dict):
        raise UserError(
            f"{source}: a scenario must be a mapping of keys, got {type(data).__name__}"
        )
    if base_dir is not None and not isinstance(base_dir, str | PathLike):
        refuse("scenario_from_dict", "base_dir", "a folder path (str or Path) or None", base_dir)
    errors = _catalog_errors(data)
    if "base_dir" in data:
        errors.append("base_dir: unknown key")
    try:
        given = {**data, "base_dir": Path(base_dir)} if base_dir is not None else data
        scenario = Scenario.model_validate(given)
    except ValidationError as exc:
        errors.extend(validation_messages(exc, data))
        scenario = None
    if errors:
        raise UserError([f"{source}: {e}" for e in dict.fromkeys(errors)])
    return scenario


def read_scenario_file(path: Path) -> Any:
    """The parsed YAML of a scenario file; a missing file, one that is not a regular file,
    not UTF-8, too large or not valid YAML (duplicate keys, alias bombs) is a
    ``UserError`` naming the file (and the line and column where there is one)."""
    return read_yaml(path, "scenario file")


def load_scenario(path: str | Path, overrides: Overrides = None) -> Scenario:
    """Load and validate a scenario file; relative paths inside it resolve from its folder.
    ``overrides``: one ``"dotted.key=value"`` string (the value read as YAML, like
    ``--set``), a list of them, or a ``{"dotted.key": value}`` mapping (values as given)."""
    path = scenario_path(path, "load_scenario")
    items = override_items(overrides)
    data = read_scenario_file(path)
    if isinstance(data, dict):
        data = _set_all(data, items)
    return scenario_from_dict(data, source=str(path), base_dir=path.resolve().parent)
