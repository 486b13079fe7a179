"""A message that floods comes once, then as a count at most once per interval, per kind."""

from gateway.edge.repeats import Repeats


def test_a_flood_is_said_once_then_counted_once_a_minute_per_kind():
    said: list[str] = []
    repeats = Repeats(said.append, interval=60)
    for i in range(3000):  # 40 s of 75 a second
        repeats("busy", "refused: busy", now=100 + i / 75)
    repeats("malformed", "refused: not msgpack", now=140)
    assert said == ["refused: busy", "refused: not msgpack"]
    assert repeats("busy", "refused: busy", now=160.5)
    assert said[-1] == "refused: busy (2999 more like it in the last 60 s)"
    assert not repeats("busy", "refused: busy", now=161)
    assert repeats("busy", "refused: busy", now=500) and said[-1] == "refused: busy (1 more like it in the last 340 s)"
