"""The gateway under systemd's eyes: sd_notify over a real NOTIFY_SOCKET datagram socket."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, pbxgw
from plugins.processes import TIMEOUT, GatewayProcess, free_port, wait_until


def test_ready_watchdog_until_a_reader_hangs_then_stopping(tmp_path, broker, notify, start_gateway):
    """READY once the queue is recovered and the loop runs; WATCHDOG=1 while the loop works;
    none while a source's read blocks the loop (a FIFO with no writer, opened like a file);
    STOPPING=1 on SIGTERM."""
    capture = tmp_path / "smdr.txt"
    source = {"name": "pbx", "type": "file", "path": str(capture), "follow": True, "profile": "avaya-ipo",
              "backoff_min": "100ms", "backoff_max": "200ms"}
    gw = start_gateway(broker.url, [source], env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000"})
    ready = notify.wait_for("READY=1")
    assert any(line.startswith("STATUS=") and "queue 0 events" in line for line in ready)
    for _ in range(3):
        notify.wait_for("WATCHDOG=1", timeout=2)  # every 0.3 s

    os.mkfifo(capture)  # the source opens it and blocks: the loop is stuck
    assert notify.quiet_for("WATCHDOG=1", quiet=2.0, within=TIMEOUT)

    with open(capture, "wb") as writer:  # a writer, a record and the end: the reads return,
        writer.write(b"2008/06/28 09:28:41,00:00:00,9,8004206,I,4324,4324,,0,1000014155,0,E4324,Joe,T9161,L,0,0\r\n")
        capture.unlink()  # and the FIFO is gone, so the source does not open it again
    notify.wait_for("WATCHDOG=1", timeout=TIMEOUT)
    gw.proc.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1")
    assert gw.proc.wait(TIMEOUT) == 0


UNIT = ROOT / "systemd" / "pbxgw.service"


@pytest.mark.parametrize("name", ["pbxgw.service", "pbxgw-collect.service"])
def test_the_unit_verifies_and_its_exposure_is_at_most_2(tmp_path, name):
    """systemd-analyze on the unit as installed, its ExecStart pointed at this checkout's
    pbxgw (verify checks that the command exists)."""
    unit = tmp_path / name
    pbxgw = Path(sys.executable).with_name("pbxgw")
    unit.write_text((ROOT / "systemd" / name).read_text().replace("/opt/pbxgw/venv/bin/pbxgw", str(pbxgw)))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                              capture_output=True, text=True)
    exposure = float(re.search(rf"Overall exposure level for {re.escape(name)}: ([\d.]+)", security.stdout)[1])
    assert exposure <= 2.0, security.stdout


def test_the_unit_refuses_restarts_for_a_bad_config_and_keeps_its_state_private():
    unit = UNIT.read_text()
    assert "RestartPreventExitStatus=78" in unit  # pbxgw exits 78 on a bad config
    for setting in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "DynamicUser=yes", "StateDirectory=pbxgw",
                    "StateDirectoryMode=0700", "UMask=0077", "DevicePolicy=closed", "DeviceAllow=char-hidraw rw"):
        assert setting in unit


def test_status_answers_with_the_broker_down_and_says_so_when_no_gateway_runs(tmp_path, processes):
    capture = tmp_path / "smdr.txt"
    capture.write_bytes((ROOT / "firmware_profiles" / "pbx" / "avaya-ipo" / "samples.txt").read_bytes())
    source = {"name": "pbx", "type": "file", "path": str(capture), "profile": "avaya-ipo"}
    gw = GatewayProcess(tmp_path / "gw", f"mqtt://127.0.0.1:{free_port()}", [source])  # no broker there
    processes.append(gw)
    gw.start()
    wait_until(lambda: pbxgw("status", "--config", str(gw.config)).returncode == 0, what="status to answer")
    state = json.loads(pbxgw("status", "--json", "--config", str(gw.config)).stdout)
    wait_until(lambda: json.loads(pbxgw("status", "--json", "--config", str(gw.config)).stdout)
               ["sources"][0]["records"] == 10, what="the capture read")
    state = json.loads(pbxgw("status", "--json", "--config", str(gw.config)).stdout)
    assert set(state) == {"running", "gateway", "sources", "alarms", "queue", "archive", "broker", "headsets"}
    assert state["queue"]["depth"] >= 10 and state["broker"]["connected_since"] is None
    text = pbxgw("status", "--config", str(gw.config)).stdout.decode()
    assert f"source pbx (file {capture}, avaya-ipo, UTC):" in text and "10 records" in text and "not connected" in text
    assert " ago, " in text and " local" in text  # the last record, as a person reads it
    documented = (ROOT / "docs" / "operations.md").read_text()
    for values in state.values():
        for key in (values[0] if isinstance(values, list) and values else values if isinstance(values, dict) else {}):
            assert f"`{key}`" in documented, key
    assert gw.state_dir.stat().st_mode & 0o777 == 0o700  # the queue is the service's alone
    assert all(p.stat().st_mode & 0o077 == 0 for p in gw.state_dir.rglob("*"))
    gw.kill(signal.SIGTERM)
    gone = pbxgw("status", "--config", str(gw.config))
    assert gone.returncode == 1 and b"no gateway answers" in gone.stderr
    assert b"Connection refused" not in gone.stdout and b"gateway: not running" in gone.stdout
    offline = json.loads(pbxgw("status", "--json", "--config", str(gw.config)).stdout)
    assert offline["running"] is False and offline["queue"]["depth"] >= 10  # the broker never took them
    assert offline["sources"] == [{"name": "pbx", "next_seq": 11}]
    # A config being edited (an error in [mqtt]) does not keep status from reading the queue.
    gw.config.write_text(gw.config.read_text().replace("[mqtt]", "[mqtt]\nkeepalive = \"forever\""))
    assert json.loads(pbxgw("status", "--json", "--config", str(gw.config)).stdout)["running"] is False


def test_sighup_restarts_a_changed_source_keeps_the_queue_and_refuses_a_broken_config(tmp_path, processes, notify):
    samples = (ROOT / "firmware_profiles" / "pbx" / "avaya-ipo" / "samples.txt").read_bytes()
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_bytes(samples)
    second.write_bytes(samples[:samples.index(b"\n") + 1])  # one record
    source = {"name": "pbx", "type": "file", "path": str(first), "profile": "avaya-ipo"}
    other = {"name": "other", "type": "file", "path": str(first), "profile": "avaya-ipo"}
    gw = GatewayProcess(tmp_path / "gw", f"mqtt://127.0.0.1:{free_port()}", [source, other])  # no broker
    processes.append(gw)
    gw.start(env={"NOTIFY_SOCKET": notify.path})
    notify.wait_for("READY=1")

    def state():
        run = pbxgw("status", "--json", "--config", str(gw.config))
        return json.loads(run.stdout) if run.returncode == 0 else {"queue": {"depth": None}}

    wait_until(lambda: state()["queue"]["depth"] == 20, what="both sources read")
    gw.config.write_text(gw.config.read_text().replace(f'path = "{first}"', f'path = "{second}"', 1))
    gw.proc.send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING=1")
    notify.wait_for("READY=1")
    wait_until(lambda: state()["queue"]["depth"] == 21, what="the changed source read its new file")
    sources = {s["name"]: s for s in state()["sources"]}
    assert (sources["pbx"]["records"], sources["other"]["records"]) == (1, 10)  # only pbx restarted

    good = gw.config.read_text()
    gw.config.write_text(good.replace("[mqtt]", "[mqtt\n"))  # not TOML any more
    gw.proc.send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING=1")
    notify.wait_for("READY=1")
    wait_until(lambda: "reload refused" in gw.log_text(), what="the refusal logged")
    gw.config.write_text(good)  # for pbxgw status, which reads the config to find the gateway
    assert gw.proc.poll() is None and state()["queue"]["depth"] == 21


def test_the_install_script_lays_out_a_working_service_and_keeps_an_edited_config(tmp_path):
    root = tmp_path / "root"
    env = {**os.environ, "DESTDIR": str(root), "PYTHON": sys.executable}
    first = subprocess.run(["sh", str(ROOT / "tools" / "install.sh")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Next: edit /etc/pbxgw/config.toml" in first.stdout
    for path in ("etc/systemd/system/pbxgw.service", "usr/lib/sysusers.d/pbxgw.conf",
                 "etc/udev/rules.d/70-pbxgw-headsets.rules", "opt/pbxgw/share/doc/operations.md"):
        assert (root / path).is_file(), path
    config = root / "etc" / "pbxgw" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o640
    installed = subprocess.run([str(root / "opt" / "pbxgw" / "venv" / "bin" / "pbxgw"), "check-config", str(config)],
                               capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    config.write_text(config.read_text() + "# edited on site\n")
    again = subprocess.run(["sh", str(ROOT / "tools" / "install.sh")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "was kept" in again.stdout
    assert config.read_text().endswith("# edited on site\n")
