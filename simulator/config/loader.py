"""Read a scenario YAML safely, apply ``--set`` overrides, report every error at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.config.scenario import Scenario
from simulator.errors import UnknownNameError, UserError
from simulator.specs.files import parse_yaml, read_yaml
from simulator.specs.strict import validation_messages


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"engine.max_num_seqs=128"`` -> (["engine", "max_num_seqs"], 128); the value is YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected dotted.key=value, e.g. engine.max_num_seqs=128")
    value = parse_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    return [part for part in key.strip().split(".")], value


def set_dotted(data: dict, key: str | list[str], value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for the key ``"a.b"`` (or ``["a", "b"]``), creating
    sections as needed."""
    parts = key.split(".") if isinstance(key, str) else key
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def with_settings(scenario: Scenario, settings: Mapping[str, Any]) -> Scenario:
    """``scenario`` with user-given ``dotted.key: value`` settings (as ``--set`` gives them):
    each key and value is checked like the scenario file, and errors name the key."""
    if not settings:
        return scenario
    data = scenario.model_dump(mode="json", exclude_unset=True)
    for key, value in settings.items():
        set_dotted(data, key, value)
    return scenario_from_dict(data, base_dir=scenario.base_dir)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each ``dotted.key=value`` in a nested dict (creating sections as needed)."""
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(data, path, value)
    return data


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


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load and validate a scenario file; relative paths inside it resolve from its folder."""
    path = Path(path)
    data = read_scenario_file(path)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides or [])
    return scenario_from_dict(data, source=str(path), base_dir=path.resolve().parent)
