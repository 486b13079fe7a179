"""The house's layering: the sans-I/O core imports no I/O library and reads no clock; the
PBX wing (gateway/smdr/) imports nothing of the gateway but itself, the events and the
errors (its loader aside); and no two modules import each other."""

import ast
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent
CORE = ["events.py", "errors.py", "queued.py", "outbox.py", "backoff.py", "alarms.py",
        "smdr/framer.py", "smdr/fields.py", "smdr/split.py", "smdr/parser.py", "smdr/stream.py",
        "smdr/plan.py", "smdr/quick.py", "smdr/profile.py", "smdr/offline.py", "smdr/draft.py",
        "smdr/responder.py", "headsets/descriptor.py", "headsets/layout.py", "headsets/telephony.py",
        "headsets/usages.py", "headsets/reports.py", "central/ingest.py", "central/asker.py", "ranges.py", "replay.py"]
FORBIDDEN_MODULES = {"serial", "pyudev", "paho", "socket", "asyncio", "sqlite3", "select", "os", "time", "cffi"}
#: What the PBX wing may import of the gateway (besides itself); its loader reads files.
SMDR_MAY_IMPORT = {"gateway.events", "gateway.errors"}
SMDR_LOADER = "gateway.smdr.profiles"
MODULES = {".".join(("gateway", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): p
           for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The gateway modules ``path`` imports, anywhere in it (``from gateway import x``
    counts as ``gateway.x`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return {name for name in found if name in MODULES and name != "gateway"}


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
        if isinstance(node, ast.Attribute) and node.attr in ("read_text", "read_bytes", "write_text", "write_bytes"):
            pytest.fail(f"{module} reads or writes a file ({node.attr}) at line {node.lineno}")
    assert not imported & FORBIDDEN_MODULES


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("gateway.smdr.") and m != SMDR_LOADER))
def test_the_pbx_wing_imports_only_itself_the_events_and_the_errors(module):
    outside = {m for m in imports(MODULES[module]) if not m.startswith("gateway.smdr")} - SMDR_MAY_IMPORT
    assert not outside, f"{module} imports {sorted(outside)}"


def test_no_two_modules_import_each_other():
    graph = {name: imports(path) for name, path in MODULES.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a != b and a in graph.get(b, ()) and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert not pairs, f"these import each other: {pairs}"
