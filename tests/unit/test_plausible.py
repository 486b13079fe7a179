"""Calls that parse but look wrong: none on any profile's own samples, and some as soon as
a column of its layout is read one place off."""

import re
import shutil

import pytest

from gateway.smdr import offline, profiles
from gateway.smdr.plausible import Doubts, doubts


def counted(profile) -> dict[str, int]:
    """The doubts of a profile's samples (a file: their [test] receive date says nothing of
    when they were printed, so starts are not doubted)."""
    found = Doubts(live=False)
    for event in offline.sample_events(profile, profiles.samples(profile)):
        found.add(event)
    return found.as_map()


def shifted_copy(tmp_path, name: str, column: str, by: int):
    """A copy of a bundled profile with one column of every layout variant moved ``by``
    characters (fixed width) or fields (delimited)."""
    source = profiles.find(name).path.parent
    copy = tmp_path / name
    shutil.copytree(source, copy)
    text = (copy / "profile.toml").read_text()
    text = re.sub(rf"\b({column}) = \[(\d+), (\d+)\]", lambda m: f"{m[1]} = [{int(m[2]) + by}, {int(m[3]) + by}]", text)
    text = re.sub(rf"\b({column}) = (\d+)\b(?!\])", lambda m: f"{m[1]} = {int(m[2]) + by}", text)
    (copy / "profile.toml").write_text(text)
    return profiles.find(str(copy))


def test_no_bundled_profile_doubts_its_own_samples(profile):
    assert counted(profile) == {}


@pytest.mark.parametrize("name, column", [
    ("panasonic-kx-tda", "ext"), ("nec-sl", "station"), ("samsung-officeserv", "ext"),
])
def test_an_extension_column_one_character_late_is_doubted(tmp_path, name, column):
    """Cut one character late, 101 reads as 01: every call still parses, and says so."""
    assert counted(profiles.find(name)) == {}
    off = shifted_copy(tmp_path, name, column, 1)
    calls = [e for e in offline.sample_events(off, profiles.samples(off)) if e.KIND == "call"]
    assert calls and counted(off)["ext"] == sum(1 for e in calls if e.ext)


#: The fixed-width profiles but Mitel 5000's (socket and serial), whose columns are digits
#: beside digits: one character late they read as other plausible numbers (11202 as 1202),
#: which no doubt here can tell from a real one.
FIXED = [p.name for p in profiles.load_all() if p.layout.kind == "fixed" and not p.name.startswith("mitel-5000")]


@pytest.mark.parametrize("name", FIXED)
def test_a_fixed_layout_one_character_off_is_unparsed_or_doubted(tmp_path, name):
    """Every column one character late: no fixed-width profile reads its samples as before
    without saying so (unparsed records, or doubted calls). (A delimited field off by one
    is another field entirely: unparsed, as the parser's tests show.)"""
    off = shifted_copy(tmp_path, name, r"\w+", 1)
    events = offline.sample_events(off, profiles.samples(off))
    assert any(e.KIND == "unparsed" for e in events) or counted(off)


def test_each_doubt_alone():
    rx = 1_768_478_400_000  # 2026-01-15 12:00 UTC
    start = rx // 1000
    assert doubts("101", "05", 60, 5, start, rx) == []
    assert doubts("M 101", "05", 60, 5, start, rx) == ["ext"]
    assert doubts("101", "Line 1", 60, 5, start, rx) == ["trunk"]
    assert doubts("101", None, 90_000, 4_000, start, rx) == ["dur", "ring"]
    assert doubts("101", None, 60, 5, start - 400 * 86400, rx) == ["start"]
    assert doubts("101", None, 60, 5, start - 400 * 86400, None) == []  # a file read later: no receive time
