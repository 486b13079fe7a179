#!/bin/sh
# Create .venv with pbxgw and its test tools installed, on a fresh Debian-like machine too.
# Used by the Makefile; safe to run again (pip skips what is installed). CC=/bin/false
# installs pbxgw as a machine without a C compiler has it (tools/nocc.sh).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "pbxgw needs Python 3.11 or newer as '$PYTHON' (set PYTHON=... to choose one)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv as its own package.
        rm -rf .venv
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
# The compiled parser needs a C compiler and Python's headers; without them pbxgw still
# installs (pure Python), but `make test` compares both engines, so get them here.
include=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if ! command -v cc >/dev/null 2>&1 || [ ! -f "$include/Python.h" ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq gcc python3-dev
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,central]'
