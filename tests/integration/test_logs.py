"""Logs a person reads at 3 a.m.: each failure once per kind until it changes, then how long
it lasted; one line per full-queue episode; what the broker said, and nothing it did not."""

import os
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.commands.simulate import PtyLine
from plugins.processes import Broker, wait_until


def test_a_missing_serial_device_is_said_once_then_its_recovery(tmp_path, broker, start_gateway):
    device = tmp_path / "by-id-usb-serial"
    source = {"name": "kx", "type": "serial", "device": str(device), "profile": "panasonic-kx-tda",
              "backoff_min": "20ms", "backoff_max": "50ms"}
    gw = start_gateway(broker.url, [source])
    wait_until(lambda: "cannot open" in gw.log_text(), what="the first failure")
    wait_until(lambda: os.path.exists(gw.state_dir / "queue.db"), what="the gateway to run")
    line = PtyLine()
    try:
        time.sleep(1)  # the outage itself: some twenty retries, 50 ms apart at most
        device.symlink_to(line.path)
        wait_until(lambda: "pbxgw.source.kx: INFO: reading" in gw.log_text(), what="the device to be read")
    finally:
        line.close()
    log = gw.log_text()
    failures = [entry for entry in log.splitlines() if "cannot open" in entry]
    assert failures == [f"pbxgw.source.kx: WARNING: cannot open {device}: No such file or directory; retrying"]
    assert f"reading {device} at 9600 baud (recovered after " in log


def test_a_refusing_broker_is_said_once_without_a_certificate_hint(tmp_path, processes, start_gateway):
    broker = Broker(tmp_path / "broker", anonymous=False)
    broker.start()
    processes.append(broker)
    source = {"name": "f", "type": "file", "path": "/dev/null", "profile": "avaya-ipo"}
    gw = start_gateway(broker.url, [source], mqtt={"backoff_min": "50ms", "backoff_max": "100ms"})
    connects = lambda: (tmp_path / "broker" / "mosquitto.log").read_text().count("not authorised")  # noqa: E731
    wait_until(lambda: connects() >= 4, what="several refused attempts")
    log = gw.log_text()
    assert log.count("broker refused the connection") == 1, log
    assert "client certificate" not in log and "Traceback" not in log


def test_a_client_id_taken_over_is_not_an_unexplained_error(tmp_path, broker, start_gateway):
    source = {"name": "f", "type": "file", "path": "/dev/null", "profile": "avaya-ipo"}
    gw = start_gateway(broker.url, [source], mqtt={"backoff_min": "2s", "backoff_max": "2s"})
    wait_until(lambda: "connected to 127.0.0.1" in gw.log_text(), what="the gateway to connect")
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pbxgw-gw-test", protocol=MQTTProtocolVersion.MQTTv5)
    other.connect("127.0.0.1", broker.port)
    other.loop_start()
    try:
        wait_until(lambda: "closed the connection without a reason" in gw.log_text(), what="the takeover to be said")
    finally:
        other.loop_stop()
        other.disconnect()
    assert "another client with client id 'pbxgw-gw-test'" in gw.log_text()
    assert "Unspecified error" not in gw.log_text()
