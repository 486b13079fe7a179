"""Config files: typed settings, and one clear line for every mistake."""

import pytest

from gateway.edge import config
from gateway.errors import ConfigError

GOOD = """
[gateway]
id = "gw-01"
site = "taipei-hq"
state_dir = "/var/lib/pbxgw"

[mqtt]
url = "mqtts://broker.example:8884"
linger = "250ms"

[queue]
max_bytes = "64MiB"
when_full = "drop_newest"
sync_interval = "2s"

[[source]]
name = "pbx1"
type = "serial"
device = "/dev/serial/by-id/usb-FTDI-if00"
profile = "panasonic-kx-tda"
timezone = "Asia/Taipei"

[[source]]
name = "ipo"
type = "tcp-server"
port = 5010
profile = "avaya-ipo"
quiet = "30m"
quiet_hours = "Mon-Fri 08:00-18:00"

[headsets]
enabled = true
drive_leds = true

[[headsets.device]]
path = "/dev/hidraw-thin-client"
serial = "SN42"

[[headset]]
serial = "SN42"
agent = "alice"
extension = "4101"
"""


def load(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return config.load(path)


def test_a_full_config_is_typed(tmp_path):
    s = load(tmp_path, GOOD)
    assert (s.gateway_id, s.site, s.topic_prefix) == ("gw-01", "taipei-hq", "pbxgw/v1/taipei-hq/gw-01")
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.mqtt.linger) == ("broker.example", 8884, True, 0.25)
    assert (s.queue.max_bytes, s.queue.when_full, s.queue.sync_interval) == (64 * 1024**2, "drop_newest", 2.0)
    pbx1, ipo = s.sources
    assert (pbx1.type, pbx1.profile.name, str(pbx1.timezone)) == ("serial", "panasonic-kx-tda", "Asia/Taipei")
    assert (ipo.type, ipo.port, ipo.host, ipo.allow) == ("tcp-server", 5010, "0.0.0.0", ())
    assert (ipo.quiet, sorted(ipo.quiet_hours.windows[0].days), pbx1.quiet, pbx1.quiet_hours) == (1800.0, [0, 1, 2, 3, 4], 0.0, None)
    h = s.headsets
    assert (h.enabled, h.discover, h.drive_leds) == (True, True, True)
    assert [(d.path, d.descriptor, d.serial) for d in h.devices] == [("/dev/hidraw-thin-client", "", "SN42")]
    assert [(a.serial, a.agent, a.extension) for a in h.agents] == [("SN42", "alice", "4101")]


@pytest.mark.parametrize("old, new, key, expected", [
    ('site = "taipei-hq"', 'site = "taipei/#"', "gateway.site", "it goes into MQTT topics"),
    ('url = "mqtts://broker.example:8884"', 'url = "http://x"', "mqtt.url", "expected mqtt://HOST"),
    ('linger = "250ms"', 'linger = "soon"', "mqtt.linger", "expected a duration"),
    ('max_bytes = "64MiB"', 'max_bytes = "64 megs"', "queue.max_bytes", "expected a size"),
    ('when_full = "drop_newest"', 'when_full = "block"', "queue.when_full", "expected one of drop_oldest"),
    ('type = "serial"', 'type = "usb"', "source[1].type", "expected one of serial"),
    ('profile = "panasonic-kx-tda"', 'profile = "panasonic"', "source[1].profile", "no such profile"),
    ('timezone = "Asia/Taipei"', 'timezone = "Taipei"', "source[1].timezone", "expected a zone"),
    ('port = 5010', 'port = 70000', "source[2].port", "expected 1 to 65535"),
    ('url = "mqtts://broker.example:8884"', 'url = "mqtts://gw:s3cret@broker.example:8884"', "mqtt.url",
     "a user name or password in the URL is not read; put them in username"),
    ('port = 5010', 'port = 5010\nallow = ["192.0.2.300"]', "source[2].allow", "expected IP addresses or networks"),
    ('port = 5010', 'port = 5010\nallow = "192.0.2.3"', "source[2].allow", "expected a list"),
    ('timezone = "Asia/Taipei"\n', 'timezone = "Asia/Taipei"\ndate_order = "MD"\n', "source[1].date_order",
     "expected one of YMD, MDY, DMY for profile panasonic-kx-tda"),
    ('device = "/dev/serial', 'devce = "/dev/serial', "source[1].device", "'devce' is there: a typo?"),
    ('enabled = true', 'enabled = true\ncolour = "red"', "headsets.colour", "unknown key"),
    ('[headsets]', '[headsetz]', "headsetz", "unknown key"),
    ('drive_leds = true', 'drive_leds = "yes"', "headsets.drive_leds", "expected true or false"),
    ('quiet_hours = "Mon-Fri 08:00-18:00"', 'quiet_hours = "weekdays"', "source[2].quiet_hours",
     'expected "Mon-Fri 08:00-18:00"'),
    ('quiet_hours = "Mon-Fri 08:00-18:00"', 'quiet_hours = ""', "source[2].quiet_hours", "empty value"),
    ('agent = "alice"', 'agnet = "alice"', "headset[1].agent", "missing"),
    ('extension = "4101"\n', 'extension = "4101"\n[[headset]]\nserial = "SN42"\nagent = "bob"\n', "headsets",
     "two [[headset]] mappings have serial 'SN42'"),
    ('[[headset]]', '[headset]', "headset", "expected a list"),  # [[headset]]: agent mappings
    ('name = "ipo"', 'name = "pbx1"', "source", "two sources are named 'pbx1'"),
    ('type = "tcp-server"', 'type = "tcp-client"\nhost = "192.0.2.1"\nlogin_password_file = "/etc/pbx-password"',
     "source[2].login_password_file", "profile avaya-ipo sends no password at login"),
])
def test_mistakes_name_file_key_and_expectation(tmp_path, old, new, key, expected):
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert info.value.key == key and expected in info.value.message
    assert str(info.value).startswith(str(tmp_path / "config.toml"))


def test_a_source_can_read_dd_mm_dates(tmp_path):
    s = load(tmp_path, GOOD.replace('timezone = "Asia/Taipei"\n', 'timezone = "Asia/Taipei"\ndate_order = "DMY"\n', 1))
    assert s.sources[0].profile.start.date_order == "DMY"


def test_the_documented_example_config_is_valid():
    from helpers import ROOT

    settings = config.load(ROOT / "docs" / "config.example.toml")
    assert [s.name for s in settings.sources] == ["pbx1", "ipo"]
    assert settings.queue.max_bytes == 256 * 1024**2


def test_a_password_file_must_be_private_and_come_with_a_username(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    base = GOOD.replace('url = "mqtts://broker.example:8884"',
                        f'url = "mqtts://broker.example:8884"\nusername = "gw"\npassword_file = "{secret}"')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, base)
    assert info.value.key == "mqtt.password_file" and "chmod 600" in info.value.message
    assert "hunter2" not in str(info.value)
    secret.chmod(0o600)
    assert load(tmp_path, base).mqtt.password_file == str(secret)
    with pytest.raises(ConfigError) as info:
        load(tmp_path, base.replace('username = "gw"\n', ""))
    assert "expected a username" in info.value.message


@pytest.mark.parametrize("encode, message", [
    (lambda text: b"\xef\xbb\xbf" + text.encode(), "starts with a UTF-8 byte-order mark"),
    (lambda text: text.encode("utf-16"), "starts with a UTF-16 byte-order mark"),
    (lambda text: text.replace("gw-01", "gw-01").encode() + b"# caf\xe9\n", "not UTF-8: byte 0xE9 on line"),
])
def test_a_file_that_is_not_plain_utf8_is_one_line_saying_so(tmp_path, encode, message):
    path = tmp_path / "config.toml"
    path.write_bytes(encode(GOOD))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


@pytest.mark.parametrize("extra, key, message", [
    ('[[source]]\nname = "again"\ntype = "serial"\ndevice = "/dev/serial/by-id/usb-FTDI-if00"\n'
     'profile = "avaya-ipo"\n', "source[3].device", "is also the device of source 'pbx1' (source[1])"),
    ('[[source]]\nname = "ipo2"\ntype = "tcp-server"\nhost = "127.0.0.1"\nport = 5010\nprofile = "avaya-ipo"\n',
     "source[3].port", "port 5010 is also where source 'ipo' listens (source[2])"),
])
def test_two_sources_on_one_device_or_port_are_refused(tmp_path, extra, key, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GOOD.replace("[headsets]", extra + "[headsets]"))
    assert info.value.key == key and message in info.value.message
