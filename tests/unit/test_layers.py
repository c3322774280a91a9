"""The layer table in docs/architecture.md is true: every module is in it, no import points up.

The table is the one source: a module moved, added or given a new import must be put in
its row there, or this test names it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lfs_agent"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: The package's own entry points, which belong with the command line.
ENTRY = {"__main__": "cli"}


def table() -> dict[str, int]:
    """Module (or ``prefix.*``) -> row, from the architecture doc's table."""
    rows: dict[str, int] = {}
    for line in ARCHITECTURE.read_text().splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if match:
            for name in re.findall(r"`([\w.*]+)`", match.group(2)):
                rows[name] = int(match.group(1))
    return rows


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def row_of(module: str, rows: dict[str, int]) -> int | None:
    module = ENTRY.get(module, module)
    if module in rows:
        return rows[module]
    prefix = module.split(".")[0]
    return rows.get(f"{prefix}.*")


def imports(source: str) -> set[str]:
    """The lfs_agent modules ``source`` imports, at any depth (lazy imports included).

    The package uses absolute imports only (a relative one fails the test below).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lfs_agent.")}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            base = node.module or ""
            if base == "lfs_agent":  # from lfs_agent import worktree
                found |= {f"lfs_agent.{a.name}" for a in node.names}
            elif base.startswith("lfs_agent."):
                found.add(base)
    return {name.removeprefix("lfs_agent.") for name in found}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_row():
    rows = table()
    missing = [
        module_name(p) for p in modules() if module_name(p) and row_of(module_name(p), rows) is None
    ]
    assert missing == [], f"add these to the table in {ARCHITECTURE.name}"


def test_no_import_points_up_the_table():
    rows = table()
    upward = []
    for path in modules():
        here = module_name(path)
        if not here:
            continue
        own = row_of(here, rows)
        assert own is not None
        for target in imports(path.read_text()):
            target_row = row_of(target, rows)
            if target_row is not None and target_row > own:
                upward.append(f"{here} (row {own}) imports {target} (row {target_row})")
    assert upward == []


def test_the_check_sees_lazy_and_package_imports():
    source = (
        "from lfs_agent.errors import X\n"
        "def f():\n"
        "    from lfs_agent.cli import main\n"
        "    import lfs_agent.sync\n"
        "    from lfs_agent import worktree\n"
    )
    assert imports(source) == {"errors", "cli", "sync", "worktree"}
    rows = table()
    assert row_of("cli", rows) > row_of("sync", rows) > row_of("errors", rows)  # type: ignore[operator]
    assert row_of("backends.s3", rows) == row_of("backends", rows)
