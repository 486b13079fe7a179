"""The PBX profile library: find, load and validate ``firmware_profiles/pbx/*``.

A profile is data a technician can read and copy: ``profile.toml`` (how the PBX frames
and lays out a record, and how columns become event fields), ``samples.txt`` (records
the PBX printed) and ``expected.jsonl`` (the events they must give). docs/profiles.md
explains every key. Loading compiles the TOML into immutable objects the parser runs;
every mistake is one :class:`~gateway.errors.ProfileError` naming file and key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import re._constants as re_constants
import re._parser as re_parser
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gateway.firmware_profiles import BUNDLED
from gateway.errors import ProfileError
from gateway.smdr.fields import DATE_ORDERS, DURATIONS
from gateway.smdr.framer import MAX_RECORD_LEN_CEILING, TERMINATORS, Continuation, FramingRules
from gateway.smdr.profile import (CLOSED_VALUES, DURATION_FIELDS, FORMATS, TEXT_FIELDS, Assembly, Condition, FieldSpec,
                                  Layout, LoginStep, PbxProfile, Reply, Rule, StartSpec, Variant)
from gateway.common.tomltable import Table, duration, load_toml

#: The bundled PBX profiles, one directory each.
LIBRARY = BUNDLED / "pbx"

#: What a profile's name may be (its directory's name).
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")

#: pyserial's own setting names (serialutil._SAVED_SETTINGS), accepted in ``[serial]``.
SERIAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "baudrate": int, "bytesize": int, "parity": str, "stopbits": (int, float),
    "xonxoff": bool, "rtscts": bool, "dsrdtr": bool,
}


def samples(profile: PbxProfile) -> bytes:
    """The profile's ``samples.txt``: records as its PBX printed them."""
    return profile.samples_path.read_bytes()


def expected(profile: PbxProfile) -> list[dict]:
    """The events its samples must give (``expected.jsonl``, one JSON object a line).

    :raises ProfileError: the file cannot be read, or a line is not a JSON object.
    """
    path = profile.expected_path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ProfileError(path, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileError(path, "", "not UTF-8 text") from None
    events = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ProfileError(path, f"line {number}", f"not JSON: {exc.msg}") from None
    return events


def bundled_names() -> list[str]:
    """Names of the profiles shipped with pbxgw, sorted.

    :raises ProfileError: the library cannot be read (an install this user may not read).
    """
    try:
        return sorted(p.name for p in LIBRARY.iterdir() if (p / "profile.toml").is_file())
    except OSError as exc:
        raise ProfileError(LIBRARY, "", f"cannot read the profile library: {exc.strerror} "
                                        "(pbxgw's files must be readable to the user it runs as)") from None


def find(name_or_path: str, here: bool = False) -> PbxProfile:
    """Load a bundled profile by name, or a profile directory / ``profile.toml`` by path;
    with ``here`` (the commands a technician types), a name that is not bundled may also be
    a profile directory in the current one (``profiles new`` writes ``./NAME``). A config's
    ``profile`` never depends on where the gateway was started.

    :raises ProfileError: no such profile, or the profile is malformed.
    """
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        return load(path / "profile.toml" if path.is_dir() else path)
    if NAME.fullmatch(name_or_path) and name_or_path in bundled_names():
        return load(LIBRARY / name_or_path / "profile.toml")
    if here and (Path(name_or_path) / "profile.toml").is_file():
        return load(Path(name_or_path) / "profile.toml")
    known = ", ".join(bundled_names())
    where = "bundled or a directory here" if here else "bundled; a copy is named by its path"
    raise ProfileError(name_or_path, "", f"no such profile ({where}); known: {known}")


def misnamed(profile: PbxProfile) -> str | None:
    """A warning when a profile's ``name`` is not its directory's (a copy not renamed: its
    events would carry the original's name), else None."""
    directory = profile.path.parent.name
    if profile.path.name == "profile.toml" and directory != profile.name:
        return (f"{profile.path}: profile.name is {profile.name!r} but its directory is {directory!r}; "
                f"its events say profile {profile.name!r} (rename one of them)")
    return None


def load_all() -> list[PbxProfile]:
    """Every bundled profile."""
    return [find(name) for name in bundled_names()]


def load(path: Path) -> PbxProfile:
    """Load and validate one ``profile.toml``.

    :raises ProfileError: with the file, the key and what was expected.
    """
    data = _with_base(path, load_toml(path, ProfileError))
    assembly_table = copy.deepcopy(data.get("assembly", {}))
    top = Table(str(path), "", data, ProfileError)
    meta = top.table("profile", required=True)
    extends = meta.take("extends", str, "") or None  # (read by _with_base)
    name = meta.take("name", str)
    if not NAME.fullmatch(name):
        raise meta.fail("name", f"expected lower-case letters, digits, '-' or '_'; got {name!r}")
    title = meta.take("title", str)
    source = meta.take("source", str, "")
    meta.done()

    framing = _framing(top.table("framing"))
    layout = _layout(top.table("layout", required=True))
    start, specs = _fields(top.table("fields", required=True), layout.columns)
    if framing.page_date is not None and start.date is not None and not start.date_optional:
        raise ProfileError(str(path), "framing.page_date", "the records print their own date: a page date "
                                                            "is for a start with date_order = \"none\" or "
                                                            "date_optional = true")
    rules = tuple(_rule(t, layout.columns) for t in top.tables("rules"))
    filled = {s.target for s in specs}
    for rule in rules:
        clash = filled.intersection(dict(rule.set)) | filled.intersection(
            g for _, p in rule.when for g in p.groupindex)
        if clash:
            raise ProfileError(str(path), "rules", f"{sorted(clash)[0]!r} is also set in [fields]")

    serial_t = top.table("serial")
    serial = {key: serial_t.take(key, kind) for key, kind in SERIAL_KEYS.items() if key in serial_t.keys()}
    serial_t.done()
    transport = top.table("transport")
    login = tuple(_login_step(t) for t in transport.tables("login"))
    replies = tuple(_reply(t) for t in transport.tables("reply"))
    quiet = duration(transport, "quiet", 0.0)
    transport.done()

    vendor = {s.target for s in specs} | {f for r in rules for f in dict(r.set)} | {
        g for r in rules for _, p in r.when for g in p.groupindex} | {
        g for c in framing.continuation for g in c.match.groupindex}
    assembly = _assembly(top.table("assembly"), {f"x.{f[2:]}" for f in vendor if f.startswith("x_")},
                         assembly_digest(assembly_table))

    test = top.table("test")
    test_timezone = test.take("timezone", str, "UTC")
    received = test.take("received", datetime, datetime(2026, 1, 15, 12, tzinfo=timezone.utc))
    if received.tzinfo is None:
        raise test.fail("received", "expected a time with a zone, e.g. 2026-01-15T12:00:00Z")
    test.done()
    top.done()
    return PbxProfile(name=name, title=title, source=source, path=path, framing=framing,
                      layout=layout, start=start, fields=specs, rules=rules,
                      test_timezone=test_timezone, test_received=received,
                      serial=serial, login=login, replies=replies, quiet=quiet, assembly=assembly,
                      assembly_table=assembly_table if isinstance(assembly_table, dict) else {}, extends=extends)


#: The event fields assembly may look at, besides the profile's own ``x.`` fields.
ASSEMBLY_FIELDS = (*TEXT_FIELDS, *DURATION_FIELDS)


def assembly_from_table(table: Any, where: str) -> Assembly:
    """The assembly rules a gateway's status gives for a profile (its ``[assembly]`` as
    written): the ``x.`` fields it names are taken as the profile's own, as the gateway
    loaded the profile with them.

    :raises ProfileError: it does not read (named by ``where``).
    """
    if not isinstance(table, dict):
        raise ProfileError(where, "assembly", f"expected a table, got {type(table).__name__}")
    named: set[str] = set()

    def walk(value: Any, depth: int) -> None:
        if depth > 4:
            raise ProfileError(where, "assembly", "nested deeper than an [assembly] table is")
        if isinstance(value, str) and value.startswith("x."):
            named.add(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1)
                walk(v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                walk(v, depth + 1)

    walk(table, 0)
    return _assembly(Table(where, "assembly", copy.deepcopy(table), ProfileError), named, assembly_digest(table))


def assembly_digest(table: dict) -> str:
    """12 hex digits of the SHA-256 of an ``[assembly]`` table as written (keys sorted):
    the same rules, the same digest, wherever they are read."""
    canonical = json.dumps(table, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _assembly(t: Table, vendor: set[str], digest: str) -> Assembly:
    """``[assembly]``: how records join into calls (see :class:`Assembly`); ``digest``
    is :func:`assembly_digest` of the table as written."""
    known = (*ASSEMBLY_FIELDS, *sorted(vendor))

    def field(key: str, value: Any, where: Table = t) -> str:
        if value not in known:
            raise where.fail(key, f"expected an event field or one of this profile's x. fields ({', '.join(known)}); "
                              f"got {value!r}")
        return value

    def condition(key: str, default: Condition = ()) -> Condition:
        """A table of field = regex (all must match), or a list of such tables (any)."""
        if key not in t.keys():
            return default
        value = t.take(key, (dict, list))
        tables = [Table(t.path, f"{t.dotted(key)}[{i}]", v, t.error) for i, v in enumerate(value, 1)] \
            if isinstance(value, list) else [Table(t.path, t.dotted(key), value, t.error)]
        return tuple(tuple((field(name, name, c), _regex(c, name, pattern)) for name, pattern in c.items())
                     for c in tables)

    version = t.take("version", int, 1)
    if version < 1:
        raise t.fail("version", f"expected 1 or more; got {version}")
    join = tuple(field("join", name) for name in t.take("join", list, []))
    line = field("line", t.take("line", str)) if "line" in t.keys() else None
    window = int(duration(t, "window", 0))
    if join and line:
        raise t.fail("line", "records join by join fields or along a line, not both")
    if (join or line) and not window:
        raise t.fail("window", "expected the seconds within which records of one call follow each other, "
                               "e.g. \"1h\"")
    hold = field("hold", t.take("hold", str)) if "hold" in t.keys() else None
    starts = t.take("starts", str, "leg", choices=("leg", "call"))
    name = field("name", t.take("name", str)) if "name" in t.keys() else None
    group = field("group", t.take("group", str)) if "group" in t.keys() else None
    every_leg = t.take("every_leg", bool, False)
    assembly = Assembly(version, join, window, line, condition("ends"),
                        condition("transfer", ((("disp", re.compile("transferred")),),)), condition("voicemail"), hold,
                        starts, condition("not_calls"), name, group, every_leg, digest)
    t.done()
    return assembly


def _with_base(path: Path, data: dict, seen: tuple[str, ...] = ()) -> dict:
    """A profile's TOML over the bundled profile it ``extends`` (``[profile] extends =
    "mitel-5000"``): its tables merged key by key into the base's, anything else (a value,
    an array of tables such as ``[[rules]]``) replacing the base's. So a variant of a family
    (the same records over another link) says only what differs."""
    base_name = data.get("profile", {}).get("extends") if isinstance(data.get("profile"), dict) else None
    if not base_name:
        return data
    if base_name in seen or base_name not in bundled_names():
        why = "extends itself" if base_name in seen else f"no bundled profile {base_name!r}"
        raise ProfileError(str(path), "profile.extends", f"{why}; known: {', '.join(bundled_names())}")
    base_path = LIBRARY / base_name / "profile.toml"
    base = _with_base(base_path, load_toml(base_path, ProfileError), (*seen, base_name))
    return _merged(base, data)


def _merged(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return merged


def _login_step(t: Table) -> LoginStep:
    expect = t.take("expect", str, "")
    _bytes(t, "expect", expect)  # compared with the bytes received, one per character
    step = LoginStep(expect, _bytes(t, "send", t.take("send", str, "")),
                     float(t.take("timeout", (int, float), 10)), t.take("password", bool, False))
    if step.password and not step.send.rstrip(b"\r\n"):
        raise t.fail("password", "expected send = the factory password (a source's login_password_file replaces it)")
    if not (step.expect or step.send) or step.timeout <= 0:
        raise t.fail("", "expected expect and/or send text, and a timeout above 0 seconds")
    t.done()
    return step


def _reply(t: Table) -> Reply:
    reply = Reply(_bytes(t, "receive", t.take("receive", str)), _bytes(t, "send", t.take("send", str)))
    if not reply.receive or not reply.send:
        raise t.fail("", "expected receive and send, neither empty")
    t.done()
    return reply


def _framing(t: Table) -> FramingRules:
    terminator = t.take("terminator", str, "line", choices=tuple(TERMINATORS))
    max_len = t.take("max_record_len", int, 512)
    if not 16 <= max_len <= MAX_RECORD_LEN_CEILING:
        raise t.fail("max_record_len", f"expected 16 to {MAX_RECORD_LEN_CEILING}, got {max_len}")
    # Skip and strip patterns run on the record's bytes, before decoding: compiled from UTF-8.
    skip = tuple(re.compile(_regex(t, "skip", p).pattern.encode()) for p in t.take("skip", list, []))
    strip = tuple(re.compile(_regex(t, "strip", p).pattern.encode()) for p in t.take("strip", list, []))
    block: dict[str, Any] = {}
    page_t = t.table("page_date")
    if page_t.keys():
        page = re.compile(_regex(page_t, "match", page_t.take("match", str)).pattern.encode())
        if "date" not in page.groupindex:
            raise page_t.fail("match", "expected a (?P<date>...) group: the page's date")
        block["page_date"] = page
        block["page_date_order"] = page_t.take("date_order", str, "MDY", choices=("YMD", "MDY", "DMY"))
    page_t.done()
    if continued := tuple(_continuation(c) for c in t.tables("continuation")):
        if terminator not in ("line", "lf"):
            raise t.fail("continuation", f"expected terminator \"line\" or \"lf\" (a joined line follows a "
                                         f"\\n, which no record may hold); got {terminator!r}")
        block["continuation"] = continued
    if terminator == "block":
        block["block_len"] = t.take("block_len", int)
        if not 2 <= block["block_len"] <= max_len:
            raise t.fail("block_len", f"expected 2 to max_record_len ({max_len}), got {block['block_len']}")
        block["block_start"] = _bytes(t, "block_start", t.take("block_start", str))
        if not block["block_start"]:
            raise t.fail("block_start", "expected the bytes every block begins with")
    t.done()
    return FramingRules(terminator, max_len, skip, strip, **block)


#: The fields a continuation line may fill: text fields but the closed ones, and vendor fields.
CONTINUED_FIELDS = tuple(f for f in TEXT_FIELDS if f not in CLOSED_VALUES)


def _continuation(t: Table) -> Continuation:
    match = _regex(t, "match", t.take("match", str))
    for name in match.groupindex:
        if name not in CONTINUED_FIELDS and not name.startswith("x_"):
            raise t.fail("match", f"expected groups named {', '.join(CONTINUED_FIELDS)} or x_<name>; got {name!r}")
    if not match.groupindex:
        raise t.fail("match", "expected a named group: the field the line continues")
    join = t.take("join", str, None)
    t.done()
    return Continuation(match, join)


def _bytes(t: Table, key: str, text: str) -> bytes:
    """Text of one-byte characters (U+0000 to U+00FF) as the bytes on the wire."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise t.fail(key, "expected characters U+0000 to U+00FF (each is one byte)") from None


#: A fixed-width variant's ``[]`` for a column it does not print: read blank.
NOT_PRINTED = (0, 0)


def _layout(t: Table) -> Layout:
    kind = t.take("kind", str, choices=("fixed", "delimited"))
    options: dict[str, Any] = {}
    if kind == "delimited":
        options["delimiter"] = t.take("delimiter", str, ",")
        options["quote"] = t.take("quote", str, "")
        options["min_fields"] = t.take("min_fields", int, 1)
        for key in ("delimiter", "quote"):
            if len(options[key]) > 1 or (key == "delimiter" and not options[key]):
                raise t.fail(key, f"expected one character, got {options[key]!r}")
    variants_t = t.tables("variant")
    if not variants_t:
        raise t.fail("variant", "expected at least one [[layout.variant]]")
    columns: tuple[str, ...] = ()
    variants = []
    for vt in variants_t:
        vname = vt.take("name", str)
        max_length = vt.take("max_length", int, None)
        match = _regex(vt, "match", vt.take("match", str)) if "match" in vt.keys() else None
        cols = vt.table("columns", required=True)
        names = tuple(cols.keys())
        columns = columns or names
        if set(names) != set(columns):
            raise vt.fail("columns", f"expected the same column names as the first variant: {columns}")
        positions = tuple(_position(cols, kind, n) for n in columns)
        if kind == "fixed":
            spans = sorted((span, name) for span, name in zip(positions, columns) if span != NOT_PRINTED)
            for (a, name_a), (b, name_b) in zip(spans, spans[1:]):
                if b[0] < a[1]:
                    raise cols.fail(name_b, f"overlaps column {name_a} {list(a)}: got {list(b)}")
        cols.done()
        vt.done()
        variants.append(Variant(vname, max_length, match, positions))
    t.done()
    if any(v.max_length is None and v.match is None for v in variants[:-1]):
        raise t.fail("variant", "only the last variant may admit every record (no max_length or match)")
    return Layout(kind, columns, tuple(variants), **options)


def _position(cols: Table, kind: str, name: str) -> Any:
    if not NAME.fullmatch(name):
        raise cols.fail(name, "column names are lower-case letters, digits, '-' or '_'")
    if kind == "delimited":
        index = cols.take(name, int)
        if index < 0:
            raise cols.fail(name, f"expected a field index from 0, got {index}")
        return index
    span = cols.take(name, list)
    if not span:
        return NOT_PRINTED
    if len(span) != 2 or not all(isinstance(i, int) for i in span) or not 0 <= span[0] < span[1]:
        raise cols.fail(name, f"expected [start, end] character offsets, start < end, or [] where this variant "
                              f"does not print the column; got {span}")
    return tuple(span)


def _column(t: Table, key: str, columns: tuple[str, ...]) -> int:
    name = t.take(key, str)
    if name not in columns:
        raise t.fail(key, f"expected a column of the layout ({', '.join(columns)}); got {name!r}")
    return columns.index(name)


def _fields(t: Table, columns: tuple[str, ...]) -> tuple[StartSpec, tuple[FieldSpec, ...]]:
    st = t.table("start", required=True)
    order = st.take("date_order", str, choices=(*DATE_ORDERS, "epoch", "none"))
    if order == "epoch":
        date_col, time_col = _column(st, "column", columns), None
    elif order == "none":
        date_col, time_col = None, _column(st, "time", columns)
    elif "column" in st.keys():
        date_col = time_col = _column(st, "column", columns)
    else:
        date_col, time_col = _column(st, "date", columns), _column(st, "time", columns)
    start = StartSpec(date_col, time_col, order, st.take("time_is", str, "start", choices=("start", "end")),
                      st.take("date_optional", bool, False))
    if start.date_optional and (order not in DATE_ORDERS or date_col == time_col):
        raise st.fail("date_optional", "only for a date column of its own")
    st.done()
    specs = []
    x = t.table("x")
    for target, spec_t in [(n, t.table(n)) for n in t.keys()] + \
            [(f"x_{n}", x.table(n)) for n in x.keys()]:
        if not target.startswith("x_") and target not in TEXT_FIELDS + DURATION_FIELDS:
            raise t.fail(target, "not an event field a profile can fill; vendor fields go under [fields.x]")
        fmt = spec_t.take("format", str, "text", choices=FORMATS)
        if target in DURATION_FIELDS and fmt not in ("int", *DURATIONS, "datetime"):
            raise spec_t.fail("format", f"{target} is a duration: expected int or one of {', '.join(DURATIONS)}")
        if target in TEXT_FIELDS and fmt != "text":
            raise spec_t.fail("format", f"{target} is text")
        minus = otherwise = None
        if "minus" in spec_t.keys():
            if fmt not in ("int", *DURATIONS, "datetime"):
                raise spec_t.fail("minus", "only a number, a duration or a datetime can be less another")
            minus = _column(spec_t, "minus", columns)
        if fmt == "datetime" and (minus is None or order not in DATE_ORDERS):
            raise spec_t.fail("format", "a datetime is read as the difference of two (minus = ...), its date in "
                                        "the start's date_order")
        if "else" in spec_t.keys():
            otherwise = _column(spec_t, "else", columns)
        specs.append(FieldSpec(target, _column(spec_t, "column", columns), fmt, minus, otherwise))
        spec_t.done()
    x.done()
    t.done()
    return start, tuple(specs)


def _rule(t: Table, columns: tuple[str, ...]) -> Rule:
    when_t = t.table("when")
    when = []
    for name, pattern in when_t.items():
        if name not in columns:
            raise when_t.fail(name, f"expected a column of the layout ({', '.join(columns)})")
        regex = _regex(when_t, name, pattern)
        for group in regex.groupindex:
            if group in CLOSED_VALUES or not (group in TEXT_FIELDS or group.startswith("x_")):
                raise when_t.fail(name, f"group {group!r}: captures fill text fields or x_ vendor fields")
        when.append((columns.index(name), regex))
    set_t = t.table("set")
    settings = []
    for field, value in set_t.items():
        if field not in TEXT_FIELDS and not field.startswith("x_"):
            raise set_t.fail(field, "not an event field a rule can set")
        if not isinstance(value, str) or value not in CLOSED_VALUES.get(field, (value,)) + ("",):
            allowed = CLOSED_VALUES.get(field)
            expected = " or ".join((*allowed, '"" (null)')) if allowed else "a string"
            raise set_t.fail(field, f"expected {expected}; got {value!r}")
        settings.append((field, value))
    t.done()
    return Rule(tuple(when), tuple(settings))


def _regex(t: Table, key: str, pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise t.fail(key, f"expected a regular expression string, got {pattern!r}")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise t.fail(key, f"bad regular expression {pattern!r}: {exc}") from None
    if _repeats_a_repetition(re_parser.parse(pattern)):
        raise t.fail(key, f"the regular expression {pattern!r} repeats a repetition (like (\\d+)+): on a "
                          "long record it backtracks for minutes and would stop the gateway; "
                          "write it with one quantifier (\\d+)")
    return compiled


_REPEATS = (re_constants.MAX_REPEAT, re_constants.MIN_REPEAT)


def _repeats_a_repetition(parsed: Any, inside: bool = False) -> bool:
    """Whether a repeat that may run more than once holds a repeat of variable length:
    the shape whose backtracking is exponential. (Possessive repeats and atomic groups
    never backtrack into themselves, and their opcodes are not in ``_REPEATS``.)"""
    for op, arg in parsed:
        if op in _REPEATS:
            low, high, body = arg
            if inside and low != high:
                return True
            if _repeats_a_repetition(body, inside or high > 1):
                return True
        elif op in (re_constants.ATOMIC_GROUP, re_constants.POSSESSIVE_REPEAT):
            continue
        else:
            for part in arg if isinstance(arg, (tuple, list)) else ():
                subs = part if isinstance(part, list) else [part]
                if any(isinstance(sub, re_parser.SubPattern) and _repeats_a_repetition(sub, inside)
                       for sub in subs):
                    return True
    return False
