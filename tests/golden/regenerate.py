"""Rewrite the golden summaries of the shipped scenarios (``tests/golden/*.json``).

Run after a change that is meant to move simulated results, and say why in the commit:
``python tests/golden/regenerate.py``. ``tests/test_golden.py`` compares against them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent


def golden_summary(path: Path) -> dict:
    """The summary of one shipped scenario as ``servesim simulate --json`` prints it."""
    import simulator

    result = simulator.run(simulator.load_scenario(path))
    return json.loads(json.dumps(result.summary, default=float))


def main() -> int:
    for path in sorted((ROOT / "workloads").glob("*.yaml")):
        out = GOLDEN / f"{path.stem}.json"
        out.write_text(json.dumps(golden_summary(path), indent=1, sort_keys=True) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
