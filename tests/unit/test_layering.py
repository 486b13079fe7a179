"""The house's layering, by where code runs: the contract between a box and the centre
(``wire/``) imports nothing of pbxgw but the errors; the plumbing both use (``common/``)
only the contract; the PBX library (``smdr/``) only itself, the contract and the errors
(its loader reads TOML through ``common/``); the site box (``edge/``) and the centre
(``central/``) never each other, only the commands and the CLI see both. The sans-I/O
core imports no I/O library and reads no clock; and no two modules import each other."""

import ast
import re
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent
CORE = ["errors.py", "wire/events.py", "wire/ranges.py", "wire/replay.py", "wire/topics.py", "common/backoff.py",
        "common/schedule.py", "edge/queue/row.py", "edge/queue/schema.py", "edge/outbox.py", "edge/alarms.py", "edge/replay.py",
        "smdr/framer.py", "smdr/fields.py", "smdr/split.py", "smdr/parser.py", "smdr/stream.py",
        "smdr/plan.py", "smdr/quick.py", "smdr/profile.py", "smdr/offline.py", "smdr/draft.py",
        "smdr/responder.py", "edge/headsets/descriptor.py", "edge/headsets/layout.py", "edge/headsets/telephony.py",
        "edge/headsets/usages.py", "edge/headsets/reports.py", "central/ingest.py", "central/asker.py", "central/flow.py",
        "central/calls.py", "central/kpi.py", "commands/traffic.py"]
FORBIDDEN_MODULES = {"serial", "pyudev", "paho", "socket", "asyncio", "sqlite3", "select", "os", "time", "cffi"}
#: What each part may import of pbxgw besides itself (a prefix of the module's name).
MAY_IMPORT = {
    "gateway.wire.": ("gateway.errors",),
    "gateway.common.": ("gateway.wire.", "gateway.errors"),
    "gateway.smdr.": ("gateway.wire.", "gateway.errors"),
    "gateway.edge.": ("gateway.wire.", "gateway.common.", "gateway.smdr.", "gateway.errors", "gateway.firmware_profiles"),
    "gateway.central.": ("gateway.wire.", "gateway.common.", "gateway.smdr.", "gateway.errors"),
}
#: The PBX library's loader reads profiles' TOML through the plumbing's table reader.
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


@pytest.mark.parametrize("module", sorted(m for m in MODULES if any(m.startswith(p) for p in MAY_IMPORT)))
def test_each_part_imports_only_what_lies_below_it(module):
    part = next(p for p in MAY_IMPORT if module.startswith(p))
    allowed = (part, *MAY_IMPORT[part], *(("gateway.common.tomltable", "gateway.firmware_profiles")
                                          if module == SMDR_LOADER else ()))
    outside = sorted(m for m in imports(MODULES[module]) if not (m + ".").startswith(allowed))
    assert not outside, f"{module} imports {outside}"


def test_no_two_modules_import_each_other():
    graph = {name: imports(path) for name, path in MODULES.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a != b and a in graph.get(b, ()) and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert not pairs, f"these import each other: {pairs}"


def test_the_queues_file_names_are_spelled_only_in_its_format_module():
    """``queue.db``, the confirmed row and the segment tables: the writer, its salvage and the
    read-only view take them from ``edge/queue/schema.py``, so a change to the format is one edit."""
    spelled = re.compile(r"""["']seg_|["']queue\.db|\*confirmed\*""")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path.name != "schema.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if spelled.search(line)]
    assert not found, f"the queue's format spelled outside edge/queue/schema.py: {found}"


def test_the_topic_tree_is_spelled_only_in_wire_topics():
    """``pbxgw/v1/...`` as a string the code builds or matches (docstrings aside): the
    publisher, the collector, its asker and the tools take the tree from ``wire/topics.py``."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "wire/topics.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and "pbxgw/v1" in node.value
                  and id(node) not in docstrings]
    assert not found, f"the topic tree spelled outside wire/topics.py: {found}"
