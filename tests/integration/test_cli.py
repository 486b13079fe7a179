"""The `pbxgw` command as a technician runs it: real processes, real files."""

import importlib.util
import io
import json
import os
import re
import subprocess
import sys

import msgpack
import pytest

from gateway.smdr import offline, profiles
from gateway.wire.events import from_wire, to_json_dict
from helpers import FIXTURES, ROOT, pbxgw


def test_parse_avaya_kb_examples_matches_expected_jsonl():
    ipo = profiles.find("avaya-ipo")
    run = pbxgw("parse", "--profile", "avaya-ipo", "--tz", "UTC", str(ipo.samples_path))
    assert run.returncode == 0, run.stderr
    printed = [json.loads(line) for line in run.stdout.decode().splitlines()]
    expected = [json.loads(line) for line in ipo.expected_path.read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k not in offline.RECEIPT_KEYS} for e in printed] == expected
    assert [e["seq"] for e in printed] == list(range(1, len(expected) + 1))
    assert b"profile avaya-ipo: records 10 (calls 10, unparsed 0)" in run.stderr


def test_parse_reports_unparsed_on_stderr_and_strict_makes_it_fail():
    capture = b"2008/06/28 09:28:41,00:00:00,9,1,I,4,4,,0,1,0,E4,J,T9,L,0,0\r\nnot a record\r\n"
    lenient = pbxgw("parse", "--profile", "avaya-ipo", "--tz", "UTC", "-", input=capture)
    assert lenient.returncode == 0
    kinds = [json.loads(line)["kind"] for line in lenient.stdout.decode().splitlines()]
    assert kinds == ["call", "unparsed"]
    assert b"unparsed record 2: 1 fields, expected at least 17: 'not a record'" in lenient.stderr
    strict = pbxgw("parse", "--strict", "--profile", "avaya-ipo", "-", input=capture)
    assert strict.returncode == 1 and len(strict.stdout.splitlines()) == 2


def test_parse_msgpack_output_is_the_wire_encoding():
    ipo = profiles.find("avaya-ipo")
    run = pbxgw("parse", "--format", "msgpack", "--profile", "avaya-ipo", "--tz", "UTC", str(ipo.samples_path))
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(run.stdout)
    maps = list(unpacker)
    assert len(maps) == 10 and maps[0]["kind"] == "call" and maps[0]["start"] == 1214645321


def test_date_order_override_reads_dd_mm():
    record = b"20/01/26  9:02AM 101   05 0312345678                     00:02'17\r\n"
    us = pbxgw("parse", "--profile", "panasonic-kx-tda", "--tz", "UTC", "-", input=record)
    assert json.loads(us.stdout)["kind"] == "unparsed"  # month 20 does not exist
    uk = pbxgw("parse", "--profile", "panasonic-kx-tda", "--tz", "UTC", "--date-order", "DMY", "-", input=record)
    assert json.loads(uk.stdout)["start"] == "2026-01-20T08:59:43Z"
    bad = pbxgw("parse", "--profile", "panasonic-kx-tda", "--date-order", "DM", "-", input=record)
    assert "--date-order: expected one of YMD, MDY, DMY" in bad.stderr.decode()


def test_profiles_test_passes_and_fails_with_a_diff(tmp_path):
    run = pbxgw("profiles", "test")
    assert run.returncode == 0, run.stdout
    assert set(run.stdout.decode().split()) >= {"ok", "avaya-ipo", "panasonic-kx-tda"}
    source = profiles.find("panasonic-kx-tda").path.parent
    for name in ("profile.toml", "samples.txt"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "expected.jsonl").write_text((source / "expected.jsonl").read_text().replace('"05"', '"06"', 1))
    broken = pbxgw("profiles", "test", str(tmp_path))
    assert broken.returncode == 1
    assert 'event 1: trunk: expected "06", got "05"' in broken.stdout.decode()


def test_profiles_list_and_show():
    listed = pbxgw("profiles", "list").stdout.decode().splitlines()
    assert [line.split()[0] for line in listed] == profiles.bundled_names()
    shown = pbxgw("profiles", "show", "avaya-ipo").stdout.decode()
    assert 'name = "avaya-ipo"' in shown


def test_detect_ranks_each_profiles_own_samples_first(profile):
    run = pbxgw("detect", str(profile.samples_path))
    assert run.returncode == 0
    first_name, first_score = run.stdout.decode().splitlines()[0].split()
    expected = [json.loads(line) for line in profile.expected_path.read_text().splitlines()]
    share = sum(e["kind"] == "call" for e in expected) / len(expected)
    assert (first_name, float(first_score)) == (profile.name, round(share, 3))
    as_json = json.loads(pbxgw("detect", "--json", str(profile.samples_path)).stdout)
    assert as_json[0]["profile"] == profile.name and as_json[0]["date_order"] is None
    # no other profile fits in its own date order (in another, one may: Siemens' 13.09.00
    # reads as a Panasonic KX-TA date when DMY)
    assert all(s["score"] < 0.5 for s in as_json[1:] if s["date_order"] is None)


def test_detect_says_when_no_profile_fits():
    garbage = b"".join(b"hello %d, this is not a PBX\r\n" % i for i in range(20))
    run = pbxgw("detect", "-", input=garbage)
    assert run.returncode == 1
    assert run.stderr.decode().startswith("pbxgw detect: no profile fits this capture; closest: ")
    assert len(run.stdout.decode().splitlines()) == len(profiles.bundled_names())


def test_bad_profile_is_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / "profile.toml"
    bad.write_text(profiles.find("avaya-ipo").path.read_text().replace('kind = "delimited"', 'kind = "csv"'))
    run = pbxgw("parse", "--profile", str(bad), "-", input=b"")
    assert run.returncode == 78
    assert run.stderr.decode() == f"pbxgw: {bad}: layout.kind: expected one of fixed, delimited; got 'csv'\n"


@pytest.mark.parametrize("args, message", [
    (["parse", "--profile", "nec-x", "-"], "no such profile"),
    (["parse", "--profile", "avaya-ipo", "--tz", "Mars/Olympus", "-"], "unknown time zone"),
    (["parse", "--profile", "avaya-ipo", "/nonexistent/capture.txt"], "No such file or directory"),
])
def test_usage_errors_are_one_clear_line(args, message):
    run = pbxgw(*args, input=b"")
    assert run.returncode != 0
    assert message in run.stderr.decode() and len(run.stderr.decode().splitlines()) == 1


@pytest.mark.parametrize("name, source", [("kx-site", "panasonic-kx-tda"), ("ipo-site", "avaya-ipo"),
                                          ("ast-site", "asterisk-csv")])
def test_profiles_new_drafts_a_profile_that_reads_its_capture(tmp_path, name, source):
    capture = profiles.find(source).samples_path
    out = tmp_path / name
    run = pbxgw("profiles", "new", name, "--from", str(capture), "--out", str(out))
    assert run.returncode == 0, run.stderr
    draft = profiles.find(str(out))
    assert draft.name == name
    events = offline.sample_events(draft, profiles.samples(draft))
    calls = [e for e in events if e.KIND == "call"]
    real_profile = profiles.find(source)
    real_events = offline.sample_events(real_profile, profiles.samples(real_profile))
    assert len(calls) >= 0.8 * len([e for e in real_events if e.KIND == "call"])
    # the drafted start column reads the same call start times the real profile reads
    real = {e.raw: e.start for e in real_events if e.KIND == "call"}
    drafted = {e.raw: e.start for e in calls}
    same = [raw for raw in drafted if raw in real]
    # (Panasonic prints the END time: a draft cannot know that, so its starts differ.)
    assert same and all(drafted[r] == real[r] for r in same if source != "panasonic-kx-tda")
    again = pbxgw("profiles", "new", name, "--from", str(capture), "--out", str(out))
    assert again.returncode != 0 and "already exists" in again.stderr.decode()


def test_profiles_test_update_writes_expected_events(tmp_path):
    source = profiles.find("avaya-ipo").path.parent
    for part in ("profile.toml", "samples.txt"):
        (tmp_path / part).write_bytes((source / part).read_bytes())
    assert pbxgw("profiles", "test", str(tmp_path)).returncode == 1  # no expected.jsonl yet
    assert pbxgw("profiles", "test", str(tmp_path), "--update").returncode == 0
    assert (tmp_path / "expected.jsonl").read_text() == (source / "expected.jsonl").read_text()
    assert pbxgw("profiles", "test", str(tmp_path)).returncode == 0


def test_version_names_the_engine_installed_and_pbxgw_purepython_forces_the_reference():
    """The compiled engine where it was built (``make test``'s runs say which they expect:
    its third run installs pbxgw with no working compiler), the reference otherwise."""
    installed = "cython" if importlib.util.find_spec("gateway.smdr._smdr_c") is not None else "python"
    if not os.environ.get("PBXGW_PUREPYTHON"):
        assert installed == os.environ.get("PBXGW_EXPECT_ENGINE", installed)
    for pure, engine in (("", installed), ("1", "python")):
        run = subprocess.run([sys.executable, "-m", "gateway", "--version"], capture_output=True, text=True,
                             env={**os.environ, "PBXGW_PUREPYTHON": pure}, timeout=60)
        assert run.returncode == 0 and f"(parser engine: {engine})" in run.stdout, (pure, run.stdout)


def test_msgpack_output_is_the_events_stream_of_the_batch_path():
    sample = profiles.find("avaya-ipo").samples_path
    packed = pbxgw("parse", "--profile", "avaya-ipo", "--tz", "UTC", "--format", "msgpack", str(sample))
    lines = pbxgw("parse", "--profile", "avaya-ipo", "--tz", "UTC", str(sample))
    assert packed.returncode == lines.returncode == 0
    decoded = [to_json_dict(from_wire(m)) for m in msgpack.Unpacker(io.BytesIO(packed.stdout), raw=False)]
    assert [{k: v for k, v in e.items() if k != "rx"} for e in decoded] == \
        [{k: v for k, v in json.loads(line).items() if k != "rx"} for line in lines.stdout.decode().splitlines()]


HID = FIXTURES / "hid"


@pytest.mark.parametrize("name", sorted(p.stem for p in HID.glob("*.hid")))
def test_hid_describe_prints_hook_and_mute_with_their_bits_or_says_there_are_none(name):
    run = pbxgw("hid", "describe", str(HID / f"{name}.hid"))
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    if name.startswith("logitech") or name.endswith(("col-consumer", "col-ffa0")):
        assert "no telephony controls" in text
    else:
        assert re.search(r"buf\[1\] bit\d +Tel:HookSwitch", text) and re.search(r"buf\[1\] bit\d +Tel:PhoneMute", text)
        assert re.search(r"output report \d+ .*\n(  .*\n)*  buf\[1\] bit\d +LED:OffHook", text)


def test_hid_describe_json_keys_are_the_documented_ones():
    described = json.loads(pbxgw("hid", "describe", "--json", str(HID / "yealink-wh66.hid")).stdout)
    assert set(described) == {"applications", "telephony", "reports", "warnings"}
    report = described["reports"][0]
    assert set(report) == {"kind", "id", "application", "bytes", "controls"}
    assert set(report["controls"][0]) == {"bit", "byte", "bit_in_byte", "size", "relative", "preferred",
                                          "constant", "null", "min", "max", "usage"}
    documented = (ROOT / "docs" / "headsets.md").read_text()
    for key in [*described, *report, *report["controls"][0], "array"]:
        assert f"`{key}`" in documented


@pytest.mark.parametrize("name", sorted(p.stem for p in (HID / "replay").glob("*.hid")))
def test_hid_replay_turns_each_family_s_recording_into_exactly_the_expected_events(name):
    run = pbxgw("hid", "replay", str(HID / "replay" / f"{name}.hid"))
    assert run.returncode == 0, run.stderr
    expected = (HID / "replay" / f"{name}.expected.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in run.stdout.decode().splitlines()] == [json.loads(line) for line in expected]


def test_hid_replay_with_leds_prints_the_writes_and_a_missing_collection_is_an_error(tmp_path):
    run = pbxgw("hid", "replay", "--drive-leds", str(HID / "replay" / "jabra-evolve-link-ms.hid"))
    writes = [json.loads(line)["write"] for line in run.stdout.decode().splitlines() if "write" in line]
    assert writes == ["020100", "021300", "020100", "020000"]
    negative = pbxgw("hid", "replay", str(HID / "logitech-g535.hid"))
    assert negative.returncode == 1 and b"no telephony collection" in negative.stderr


def test_devices_lists_serial_ports_and_headsets_sections():
    run = pbxgw("devices")
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    assert text.startswith("serial ports:\n") and "\nheadsets:\n" in text
