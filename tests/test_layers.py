"""The layering rules: only one module imports yfinance; lower layers import no UI."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "impact"
LOWER = ["catalog.py", "calendars.py", "estimation.py", "returns.py", "frames.py",
         "errors.py", "study.py", "storage.py", "sources/__init__.py", "sources/snapshot.py",
         "sources/yahoo.py", "schema.py", "migrations.py", "query.py"]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_only_the_yahoo_module_imports_yfinance() -> None:
    users = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if "yfinance" in imports(p))
    assert users == ["sources/yahoo.py"]


def test_lower_layers_do_not_import_presentation() -> None:
    for rel in LOWER:
        bad = imports(PKG / rel) & {"click", "matplotlib"}
        assert not bad, f"{rel} imports {bad}"


def test_estimation_is_pure() -> None:
    bad = imports(PKG / "estimation.py") & {"duckdb", "polars", "exchange_calendars", "os",
                                            "pathlib", "click"}
    assert not bad
