"""The profile library: bundled profiles pass their own samples; mistakes name file and key."""

from pathlib import Path

import pytest

from gateway.errors import ProfileError, RecordError
from gateway.smdr import offline, profiles

GOOD = (Path(profiles.find("avaya-ipo").path)).read_text()


def test_each_bundled_profile_gives_its_expected_events(profile):
    check = offline.check_profile(profile, profiles.samples(profile), profiles.expected(profile))
    assert check.problems == [] and check.events >= 4


def test_a_wrong_expectation_is_reported_with_event_number_and_key(tmp_path):
    source = profiles.find("avaya-ipo").path.parent
    for name in ("profile.toml", "samples.txt"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    expected = (source / "expected.jsonl").read_text().replace('"ring": 21', '"ring": 22')
    (tmp_path / "expected.jsonl").write_text(expected)
    copy = profiles.find(str(tmp_path))
    check = offline.check_profile(copy, profiles.samples(copy), profiles.expected(copy))
    assert check.problems == ["event 2: ring: expected 22, got 21"]


def test_an_expected_file_that_is_not_json_names_its_line(tmp_path):
    source = profiles.find("avaya-ipo").path.parent
    (tmp_path / "profile.toml").write_bytes((source / "profile.toml").read_bytes())
    (tmp_path / "expected.jsonl").write_text('{"kind": "call"}\n{"kind": \n')
    with pytest.raises(ProfileError, match=r"expected.jsonl: line 2: not JSON"):
        profiles.expected(profiles.find(str(tmp_path)))


@pytest.mark.parametrize("old, new, key, message", [
    ('kind = "delimited"', 'kind = "delimted"', "layout.kind", "expected one of fixed, delimited"),
    ('delimiter = ","', 'delimitr = ","', "layout.delimitr", "unknown key"),
    ('date_order = "YMD"', 'date_order = "YDM"', "fields.start.date_order", "expected one of YMD"),
    ('format = "hh:mm:ss"', 'format = "hh:mm"', "fields.dur.format", "expected one of text"),
    ('{ column = "account" }', '{ column = "acount" }', "fields.acct.column", "expected a column of the layout"),
    ("when = { continuation = '1' }", "when = { continuation = '(1' }", "rules[10].when.continuation",
     "bad regular expression"),
    # 30 caller digits would take this pattern ~75 s a record: refused before it can freeze the loop.
    ("when = { continuation = '1' }", "when = { continuation = '(?:\\d+)+x' }", "rules[10].when.continuation",
     "repeats a repetition (like (\\d+)+)"),
    ('set = { dir = "int" }', 'set = { dir = "internal" }', "rules[3].set.dir", 'expected in or out or int or "" (null)'),
    ('max_record_len = 1024', 'max_record_len = 10000000', "framing.max_record_len", "expected 16 to 65536"),
    ('name = "avaya-ipo"', 'name = "Avaya IPO"', "profile.name", "expected lower-case letters"),
    ('{ column = "account" }', '{ column = "account", minus = "duration" }', "fields.acct.minus",
     "only a number, a duration or a datetime"),
])
def test_broken_profile_is_one_error_naming_file_and_key(tmp_path, old, new, key, message):
    assert_one_error(tmp_path, GOOD, old, new, key, message)


def assert_one_error(tmp_path, good, old, new, key, message):
    """``good`` with ``old`` made ``new`` fails to load with one line naming file and key."""
    assert old in good
    path = tmp_path / "profile.toml"
    path.write_text(good.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        profiles.load(path)
    assert info.value.path == str(path) and info.value.key == key
    assert message in info.value.message
    assert str(info.value).startswith(f"{path}: {key}: ") and "\n" not in str(info.value)


def test_toml_syntax_error_and_missing_file_name_the_file(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text("[profile\n")
    with pytest.raises(ProfileError, match=f"^{path}: not valid TOML"):
        profiles.load(path)
    with pytest.raises(ProfileError, match="cannot read"):
        profiles.load(tmp_path / "nope.toml")


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"no such profile \(bundled; a copy is named by its path\); known: .*avaya-ipo, .*panasonic-kx-tda"):
        profiles.find("nec-sl9")


OXE = (profiles.LIBRARY / "alcatel-oxe" / "profile.toml").read_text()


@pytest.mark.parametrize("old, new, key, message", [
    ("block_len = 772\n", "", "framing.block_len", "expected"),
    ("block_len = 772", "block_len = 4096", "framing.block_len", "expected 2 to max_record_len (1024)"),
    ('block_start = "\\u0001\\u0000"', 'block_start = ""', "framing.block_start", "expected the bytes"),
    ('receive = "\\u0000\\u0008TEST_REQ"', 'receive = ""', "transport.reply[1]", "expected receive and send"),
    ('send = "\\u0000\\u0008TEST_RSP"', 'send = "\\u0100"', "transport.reply[1].send", "U+0000 to U+00FF"),
    ('expect = "\\u0000\\u0001P"', 'expect = "\\u2026"', "transport.login[2].expect", "U+0000 to U+00FF"),
])
def test_broken_block_framing_or_transport_is_one_error_naming_the_key(tmp_path, old, new, key, message):
    assert_one_error(tmp_path, OXE, old, new, key, message)


def test_a_profile_extends_a_bundled_one_saying_only_what_differs(tmp_path):
    """The Mitel 5000's serial records are the socket's: its layout, fields and rules come
    from mitel-5000; its framing, line settings and (no) login are its own."""
    serial, socket = profiles.find("mitel-5000-serial"), profiles.find("mitel-5000")
    assert (serial.layout, serial.fields, serial.rules) == (socket.layout, socket.fields, socket.rules)
    assert (serial.framing.terminator, socket.framing.terminator) == ("line", "length32le")
    assert serial.login == () and socket.login and serial.serial == {"baudrate": 9600}
    (tmp_path / "profile.toml").write_text('[profile]\nextends = "mitel-9999"\nname = "x"\ntitle = "x"\n')
    with pytest.raises(ProfileError, match=r"profile.extends: no bundled profile 'mitel-9999'"):
        profiles.load(tmp_path / "profile.toml")


def test_the_seconds_option_of_an_elapsed_time_reads_too():
    from gateway.smdr.fields import parse_duration

    assert [parse_duration(t, "hh:mm:ss|S=s") for t in ("00:12:03", "S=000095", "")] == [723, 95, None]
    with pytest.raises(RecordError, match="is not hh:mm:ss|S=s"):
        parse_duration("S=", "hh:mm:ss|S=s")


SERIAL = (profiles.LIBRARY / "mitel-5000-serial" / "profile.toml").read_text()
SOCKET = (profiles.LIBRARY / "mitel-5000" / "profile.toml").read_text()


@pytest.mark.parametrize("old, new, key, message", [
    ("(?P<date>\\d\\d-\\d\\d-\\d{4})", "(\\d\\d-\\d\\d-\\d{4})", "framing.page_date.match", "expected a (?P<date>...) group"),
    ('date_order = "MDY" }', 'date_order = "MD" }', "framing.page_date.date_order", "expected one of YMD, MDY, DMY"),
])
def test_a_broken_page_date_names_its_key(tmp_path, old, new, key, message):
    assert_one_error(tmp_path, SERIAL, old, new, key, message)


def test_a_page_date_is_refused_where_the_records_print_their_own(tmp_path):
    dated = SERIAL.replace("[serial]", '[fields]\nstart = { date = "account", time = "start", date_order = "MDY" }\n\n[serial]')
    assert_one_error(tmp_path, dated, "[profile]", "[profile]", "framing.page_date", 'date_optional = true')


def test_a_variant_that_does_not_print_a_column_says_so_with_empty_brackets(tmp_path):
    ring_in, call = profiles.find("mitel-5000").layout.variants
    rang = profiles.find("mitel-5000").layout.columns.index("rang")
    assert (ring_in.positions[rang], call.positions[rang]) == ((51, 59), (0, 0))
    assert_one_error(tmp_path, SOCKET, "rang = []", "rang = [3]", "layout.variant[2].columns.rang",
                     "or [] where this variant does not print the column")


NEC = (profiles.LIBRARY / "nec-sl" / "profile.toml").read_text()


@pytest.mark.parametrize("old, new, key, message", [
    ('terminator = "line"', 'terminator = "crlf"', "framing.continuation", 'expected terminator "line" or "lf"'),
    ("(?P<x_caller_name>\\S.*)", "(?P<dir>\\S.*)", "framing.continuation[1].match", "expected groups named ext, trunk"),
    ("(?P<x_caller_name>\\S.*)", "(\\S.*)", "framing.continuation[1].match", "expected a named group"),
    ('join = " " }', 'joint = " " }', "framing.continuation[2].joint", "unknown key"),
])
def test_a_broken_continuation_names_its_key(tmp_path, old, new, key, message):
    assert_one_error(tmp_path, NEC, old, new, key, message)


def test_a_stored_record_whose_line_continues_nothing_is_unparsed_with_the_reason():
    """What reparse reads is a stored ``raw``, which may be anything: a line after the
    first that no continuation pattern reads makes the record unparsed, not a call."""
    from zoneinfo import ZoneInfo

    from gateway.smdr.framer import Record
    from gateway.smdr.parser import RecordParser

    parser = RecordParser(profiles.find("nec-sl"), ZoneInfo("UTC"), "gw", "pbx")
    record = b"PIN  10:52 12/09 001  00:00:20 2017       2142623802\n" + b"a line far longer than a wrapped name"
    event = parser.parse(Record(record), 1765300000000, 1)
    assert event.KIND == "unparsed" and "continues nothing the profile reads" in event.reason
    assert event.raw == record.decode()
