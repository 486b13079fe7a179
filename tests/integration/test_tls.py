"""TLS to a real Mosquitto TLS listener with certificates made here (openssl): the right CA
connects, a wrong CA or host name never does, never in plaintext; client certificates work."""

import subprocess

import pytest

from helpers import ROOT
from plugins.processes import Broker, GatewayProcess, Subscriber, wait_until

CLIENT_ID = "pbxgw-gw-test"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two CAs; a server certificate for "localhost" only and a client certificate, both
    from the first CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
                "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


def tls_broker(tmp_path, pki, require_certificate):
    broker = Broker(tmp_path / "broker", tls={"cafile": pki / "ca.crt", "certfile": pki / "server.crt",
                                              "keyfile": pki / "server.key",
                                              "require_certificate": require_certificate})
    broker.start()
    return broker


def gateway(tmp_path, url, **mqtt):
    capture = tmp_path / "smdr.txt"
    capture.write_bytes((ROOT / "firmware_profiles" / "pbx" / "avaya-ipo" / "samples.txt").read_bytes())
    source = {"name": "pbx", "type": "file", "path": str(capture), "profile": "avaya-ipo"}
    gw = GatewayProcess(tmp_path / "gw", url, [source], mqtt={"backoff_min": "200ms", **mqtt})
    gw.start()
    return gw


def test_the_right_ca_and_a_client_certificate_deliver_events(tmp_path, pki, processes):
    broker = tls_broker(tmp_path, pki, require_certificate=True)
    processes.append(broker)
    central = Subscriber(broker.url)  # the central side on the plain listener
    processes.append(central)
    gw = gateway(tmp_path, f"mqtts://localhost:{broker.tls_port}", ca_file=str(pki / "ca.crt"),
                 cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key"))
    processes.append(gw)
    central.collect(lambda ev: len(central.calls()) >= 10, what="events over TLS")
    assert "connected to localhost" in gw.log_text()


@pytest.mark.parametrize("case", ["wrong CA", "wrong host name", "no client certificate"])
def test_a_tls_failure_is_an_error_and_a_retry_never_plaintext(tmp_path, pki, processes, case):
    broker = tls_broker(tmp_path, pki, require_certificate=case == "no client certificate")
    processes.append(broker)
    host = "127.0.0.1" if case == "wrong host name" else "localhost"  # the certificate names localhost
    mqtt = {"ca_file": str(pki / ("other-ca.crt" if case == "wrong CA" else "ca.crt"))}
    gw = gateway(tmp_path, f"mqtts://{host}:{broker.tls_port}", **mqtt)
    processes.append(gw)
    expected = {"wrong CA": "CERTIFICATE_VERIFY_FAILED", "wrong host name": "CERTIFICATE_VERIFY_FAILED",
                "no client certificate": "closed the connection before accepting it"}[case]
    wait_until(lambda: expected in gw.log_text() and "retrying" in gw.log_text(), what=f"{case} refused")
    broker_log = broker.workdir / "mosquitto.log"
    wait_until(lambda: broker_log.read_text().count("New connection from 127.0.0.1:") >= 3,
               what="retries")  # it keeps trying: every attempt reaches the TLS listener
    assert f"as {CLIENT_ID}" not in broker_log.read_text()  # and never gets in, in any way
    assert "connected to" not in gw.log_text()
    assert gw.proc.poll() is None  # still running, still queueing
