"""Property tests: any bytes, whole or split anywhere, give only events, always the same."""

from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.smdr import profiles
from gateway.smdr.stream import StreamParser
from gateway.wire.events import CallEvent, UnparsedEvent, packb, unpackb

PROFILES = {name: profiles.find(name) for name in profiles.bundled_names()}
RX = 1768478400000


def run(profile, chunks):
    stream = StreamParser(profile, ZoneInfo("Asia/Taipei"), "gw", "src")
    events = []
    for chunk in chunks:
        events += stream.feed(chunk, RX)
    return events + stream.feed(b"", RX)


def sample_lines(name):
    return PROFILES[name].samples_path.read_bytes().splitlines(keepends=True)


# Inputs: random bytes, and real sample lines mutated and mixed with random bytes, so that
# the parser is driven deep into its field transforms, not only into "too few fields".
noise = st.binary(max_size=600)
mutated = st.lists(st.one_of(
    st.sampled_from(sample_lines("avaya-ipo") + sample_lines("panasonic-kx-tda")),
    st.binary(max_size=40),
    st.text(alphabet="0123456789/:,'<>*IDEXTAPM \r\n\x00\x0c", max_size=80).map(str.encode),
), max_size=12).map(b"".join)
streams = st.one_of(noise, mutated)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams, name=st.sampled_from(sorted(PROFILES)), cuts=st.lists(st.integers(0, 600)))
def test_only_events_come_out_and_splitting_never_changes_them(data, name, cuts):
    profile = PROFILES[name]
    whole = run(profile, [data])
    assert all(isinstance(e, (CallEvent, UnparsedEvent)) for e in whole)
    assert [e.seq for e in whole] == list(range(1, len(whole) + 1))
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    split = run(profile, [data[a:b] for a, b in zip(bounds, bounds[1:])])
    assert split == whole
    for event in whole:
        assert unpackb(packb(event)) == event
        assert len(event.raw) <= profile.framing.max_record_len


@settings(max_examples=50, deadline=None)
@given(data=mutated, name=st.sampled_from(sorted(PROFILES)))
# Found by this test: a record whose CR LF starts right at max_record_len (NUL padding
# counts) was cut short when its CR arrived alone.
@example(data=b"\x00" * 41 + b"01/15/26  1:07PM 202   0112 <D>5550100<I>0287654321" + b" " * 28
         + b"0'09 00:12'01" + b" " * 24 + b"FW\r\n", name="mitel-mivb")
def test_byte_by_byte_equals_whole(data, name):
    profile = PROFILES[name]
    assert run(profile, [data[i:i + 1] for i in range(len(data))]) == run(profile, [data])
