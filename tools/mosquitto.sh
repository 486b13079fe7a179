#!/bin/sh
# Make sure the Mosquitto broker is installed (Debian package), for the demo and the tests.
set -eu
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo apt-get install -y -qq mosquitto
