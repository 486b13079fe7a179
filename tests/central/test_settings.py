"""collector.toml: as strict as the gateway's config, every mistake one line naming file and key."""

import subprocess
import sys

from datetime import date

import pytest

from gateway.central import settings
from gateway.errors import ConfigError

pytestmark = pytest.mark.central

GOOD = """[collector]
database = "postgresql://collector@db.example/pbxgw"
sites = ["north", "south"]
batch_messages = 500
inflight = 1000
linger = "100ms"
session_expiry = "720h"

[mqtt]
url = "mqtts://broker.example"
client_id = "central-1"

[kpi]
answer_within = "30s"
service_level = "offered"
short_abandon = "10s"
target = 0.9
business_hours = "Mon-Sat 07:00-19:00"

[kpi.site.north]
timezone = "Europe/Oslo"
business_hours = "Mon-Fri 09:00-17:00"

[gateways]
gw-01 = "north"
"gw.02" = "south"
"""


def load(tmp_path, text):
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return settings.load(path)


def test_a_good_config_reads_into_its_settings(tmp_path):
    s = load(tmp_path, GOOD)
    assert (s.database, s.sites, s.batch_messages, s.inflight, s.linger) == (
        "postgresql://collector@db.example/pbxgw", ("north", "south"), 500, 1000, 0.1)
    assert s.topics == ["pbxgw/v1/north/+/#", "pbxgw/v1/south/+/#"] and s.session_expiry == 720 * 3600
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.mqtt.client_id) == ("broker.example", 8883, True, "central-1")
    k = s.kpi
    assert (k.answer_within, k.formula, k.short_abandon, k.target, str(k.hours)) == (
        30, "offered", 10, 0.9, "Mon-Sat 07:00-19:00")
    assert k.site_zones == (("north", "Europe/Oslo"),) and str(k.hours_of("north")) == "Mon-Fri 09:00-17:00"
    assert k.hours_of("south") == k.hours
    assert s.gateways == (("gw-01", "north"), ("gw.02", "south"))


def test_an_empty_config_collects_every_site_into_the_default_sqlite_file(tmp_path):
    s = load(tmp_path, "")
    assert s.topics == ["pbxgw/v1/+/+/#"] and s.database == settings.DEFAULT_DATABASE
    assert s.mqtt.client_id.startswith("pbxgw-collect-")


@pytest.mark.parametrize("old, new, key, message", [
    ('database = "postgresql', 'database = "mysql', "collector.database", "expected sqlite:///PATH"),
    ('sites = ["north", "south"]', 'sites = ["north", "so/uth"]', "collector.sites[2]", "expected a site id"),
    ("batch_messages = 500", "batch_messages = 5000", "collector.batch_messages", "expected at most inflight (1000)"),
    ("inflight = 1000", "inflight = 70000", "collector.inflight", "expected 1 to 65535"),
    ('linger = "100ms"', 'linger = "soon"', "collector.linger", "expected a duration"),
    ('url = "mqtts://broker.example"', 'url = "http://broker.example"', "mqtt.url", "expected mqtt://HOST"),
    ('client_id = "central-1"', 'client_id = "central 1"', "mqtt.client_id", "expected 1-64 of"),
    ("[mqtt]", "[mqtt]\nbatch_events = 3", "mqtt.batch_events", "unknown key"),
    ("[collector]", "[collector]\ndatabse = 1", "collector.databse", "unknown key"),
    ('service_level = "offered"', 'service_level = "cms"', "kpi.service_level", "answered_and_abandoned"),
    ("target = 0.9", "target = 90", "kpi.target", "0.8 for 80 %"),
    ('business_hours = "Mon-Sat 07:00-19:00"', 'business_hours = "weekdays"', "kpi.business_hours",
     "Mon-Fri 08:00-18:00"),
    ('business_hours = "Mon-Sat 07:00-19:00"', 'business_hours = ""', "kpi.business_hours", "empty value"),
    ('business_hours = "Mon-Sat 07:00-19:00"', 'business_hours = ["Mon 08:00-18:00", "Sat 25:00-26:00"]',
     "kpi.business_hours", "no time of day"),
    ('timezone = "Europe/Oslo"', 'timezone = "CEST"', "kpi.site.north.timezone", "IANA time zone"),
    ('answer_within = "30s"', 'answer_within = "soon"', "kpi.answer_within", "expected a duration"),
    ('gw-01 = "north"', 'gw-01 = "no/rth"', "gateways.gw-01", "expected a site id"),
    ('gw-01 = "north"', '"gw 01" = "north"', "gateways.gw 01", "expected a gateway id"),
    ('gw-01 = "north"', 'gw-01 = 7', "gateways.gw-01", "expected"),
])
def test_a_mistake_is_one_error_naming_file_and_key(tmp_path, old, new, key, message):
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert info.value.key == key and message in info.value.message and str(tmp_path) in str(info.value)


def test_the_config_docs_central_md_shows_is_read_as_it_says(tmp_path):
    from helpers import ROOT

    text = (ROOT / "docs" / "central.md").read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    s = load(tmp_path, text)
    defaults = load(tmp_path, "")
    assert (s.database, s.sites, s.session_expiry, s.batch_messages, s.linger, s.inflight) == (
        defaults.database, defaults.sites, defaults.session_expiry, defaults.batch_messages, defaults.linger,
        defaults.inflight)  # the page shows the defaults
    assert s.hole_grace == defaults.hole_grace
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.client_id) == ("127.0.0.1", 1883, "pbxgw-collect-central1")
    m, dm = s.mqtt, defaults.mqtt
    assert (m.host, m.port, m.tls, m.keepalive, m.backoff_min, m.backoff_max) == (
        dm.host, dm.port, dm.tls, dm.keepalive, dm.backoff_min, dm.backoff_max)
    k, d = s.kpi, defaults.kpi
    assert (k.answer_within, k.formula, k.short_abandon, k.target, k.hours) == (
        d.answer_within, d.formula, d.short_abandon, d.target, d.hours)
    assert k.site_zones == (("hq", "Europe/Paris"),)
    assert str(k.hours_of("hq")) == "Mon-Fri 07:30-19:00, Sat 09:00-12:00, 2026-12-25, 2026-12-26"
    assert date(2026, 12, 25) in k.hours_of("hq").holidays


@pytest.mark.parametrize("command, hidden", [(["collect"], "orjson"), (["fleet"], "orjson"),
                                             (["report", "--from", "2026-03-09", "--out", "o"], "matplotlib")])
def test_a_central_command_without_the_central_extra_says_how_to_install_it(tmp_path, command, hidden):
    # (a module hidden from the interpreter, as on a gateway installed without pbxgw[central])
    hide = f"import sys; sys.modules[{hidden!r}] = None; from gateway.cli import main; sys.exit(main())"
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndatabase = "sqlite:///{tmp_path}/c.db"\n')
    result = subprocess.run([sys.executable, "-c", hide, *command, "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 69 and "pip install 'pbxgw[central]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("privacy, key, message", [
    ('numbers = "blur"', "privacy.numbers", "expected one of"),
    ("keep_digits = 9", "privacy.keep_digits", "expected 0 to 8"),
    ('numbers = "hash"', "privacy.hash_key_file", "expected a file holding a secret key"),
    ('numbers_after = "soon"', "privacy.numbers_after", "expected a duration"),
    ('numbers = "hash"\nhash_key_file = "/nonexistent/key"', "privacy.hash_key_file", "cannot read"),
])
def test_a_privacy_mistake_names_its_key(tmp_path, privacy, key, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[privacy]\n{privacy}\n")
    assert info.value.key == key and message in info.value.message


def test_privacy_reads_its_schedule_and_its_key(tmp_path):
    key = tmp_path / "numbers.key"
    key.write_text("a secret of sixteen+ characters\n")
    s = load(tmp_path, f'[privacy]\nnumbers_after = "90d"\nraw_after = "365d"\nnumbers = "hash"\n'
                       f'hash_key_file = "{key}"\n').privacy
    assert (s.numbers_after, s.raw_after, s.numbers, s.hash_key) == (90 * 86400, 365 * 86400, "hash",
                                                                      b"a secret of sixteen+ characters")
    assert not load(tmp_path, "").privacy.active
