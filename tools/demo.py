"""The README's demo: a simulated Panasonic PBX on a pty, read by `pbxgw parse` through
pyserial, decoded events printed as they arrive.

Run it with `make demo`. Both halves are the real commands a technician would type:
`pbxgw simulate --pty` prints the pty's path, and `pbxgw parse` reads that path.
"""

import subprocess
import sys

PROFILE = "panasonic-kx-tda"
LINES = 30  # two passes over the profile's 15 sample lines
RATE = 3    # lines per second


def main() -> int:
    pbxgw = [sys.executable, "-m", "gateway"]
    simulator = subprocess.Popen(
        [*pbxgw, "simulate", "--profile", PROFILE, "--pty", "--rate", str(RATE), "--count", str(LINES)],
        stdout=subprocess.PIPE, text=True)
    try:
        pty = simulator.stdout.readline().strip()
        print(f"demo: simulated {PROFILE} PBX printing {LINES} lines on {pty}; parsing them:",
              file=sys.stderr, flush=True)
        parser = subprocess.run([*pbxgw, "parse", "--profile", PROFILE, "--tz", "UTC", pty])
        return parser.returncode or simulator.wait(timeout=30)
    except KeyboardInterrupt:
        return 130
    finally:
        simulator.kill()
        simulator.wait()


if __name__ == "__main__":
    sys.exit(main())
