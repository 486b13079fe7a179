"""The sans-I/O core imports no I/O library and reads no clock."""

import ast
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent
CORE = ["events.py", "errors.py", "smdr/framer.py", "smdr/fields.py", "smdr/split.py",
        "smdr/parser.py", "smdr/stream.py", "outbox.py", "backoff.py", "headsets/descriptor.py",
        "headsets/layout.py", "headsets/telephony.py", "headsets/usages.py"]
FORBIDDEN_MODULES = {"serial", "pyudev", "paho", "socket", "asyncio", "sqlite3", "select", "os", "time"}


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_no_io(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        if isinstance(node, ast.Attribute) and node.attr in ("now", "today", "utcnow", "time_ns"):
            pytest.fail(f"{module} reads the clock ({node.attr}) at line {node.lineno}")
        if isinstance(node, ast.Name) and node.id == "open":
            pytest.fail(f"{module} opens a file at line {node.lineno}")
    assert not imported & FORBIDDEN_MODULES
