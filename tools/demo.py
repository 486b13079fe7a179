"""The README's demo, the whole path: a simulated Panasonic PBX printing on a pty, the
gateway reading it through pyserial into its disk queue and publishing to a local
Mosquitto, and `pbxgw subscribe` printing the decoded events as they arrive.

Run it with `make demo`; it stops by itself after two passes over the profile's sample
printout (a few dozen events, about 15 seconds), or on Ctrl-C.
"""

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway import simulate
from gateway.smdr import offline, profiles
from tools.parts import Broker, GatewayProcess

PROFILE = "panasonic-kx-tda"
PASSES = 2  # over the profile's sample printout
RATE = 3    # lines per second


def main() -> int:
    pbxgw = [sys.executable, "-m", "gateway"]
    profile = profiles.find(PROFILE)
    lines = PASSES * len(simulate.printed_units(profile))
    events = PASSES * len(offline.sample_events(profile, profiles.samples(profile)))
    with tempfile.TemporaryDirectory(prefix="pbxgw-demo-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        simulator = subprocess.Popen([*pbxgw, "simulate", "--profile", PROFILE, "--pty",
                                      "--rate", str(RATE), "--count", str(lines)],
                                     stdout=subprocess.PIPE, text=True)
        pty = simulator.stdout.readline().strip()
        source = {"name": "pbx1", "type": "serial", "device": pty, "profile": PROFILE, "timezone": "UTC"}
        gateway = GatewayProcess(work / "gateway", broker.url, [source])
        subscriber = subprocess.Popen([*pbxgw, "subscribe", "--broker", broker.url, "--count", str(events)])
        print(f"demo: broker {broker.url}, PBX printing on {pty}, gateway log {gateway.log}\n"
              f"demo: the gateway's state meanwhile: pbxgw status --config {gateway.config}\n"
              f"demo: events as the central side receives them (Ctrl-C stops):", file=sys.stderr, flush=True)
        gateway.start()
        try:
            return subscriber.wait()
        except KeyboardInterrupt:
            return 130
        finally:
            for proc in (subscriber, simulator):
                proc.kill()
                proc.wait()
            gateway.kill(signal.SIGTERM)
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
