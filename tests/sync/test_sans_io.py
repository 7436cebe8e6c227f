"""sync/ and schema/ stay free of I/O: no socket, database, web or file library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"asyncio", "socket", "sqlite3", "sqlite_utils", "sqlalchemy", "litestar",
             "websockets", "httpx", "http", "urllib", "os", "subprocess", "threading",
             "server", "client", "pathlib", "io", "time"}


@pytest.mark.parametrize("path", sorted((ROOT / "sync").glob("*.py")) +
                         sorted((ROOT / "schema").glob("*.py")), ids=lambda p: p.name)
def test_module_imports_no_io_library(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {imported & FORBIDDEN}"
    if path.parent.name == "schema":
        assert imported <= {"__future__", "re", "dataclasses", "enum", "functools", "typing",
                            "uuid", "datetime"}
        # date arithmetic, never a reading of the clock: the caller passes the day
        clock = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute)
                 and n.func.attr in {"today", "now", "utcnow", "fromtimestamp"}}
        assert not clock, f"{path.name} reads the clock: {clock}"
