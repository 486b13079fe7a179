#!/bin/sh
# The suite as pbxgw is on a box without a C compiler (small ARM site boxes often have
# none): a copy of the tracked tree in build/nocc with its own .venv, installed with
# CC=/bin/false, so that no compiled module exists there at all. The third run of
# `make test`; arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
copy=build/nocc
mkdir -p "$copy"
find "$copy" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
git ls-files -z | xargs -0 cp --parents -t "$copy"
cd "$copy"
# Its own index, so that what git tracks (the wheel test builds from it) is this copy's.
rm -rf .git && git init -q . && git add -A
CC=/bin/false sh tools/venv.sh
if ls gateway/smdr/_smdr_c*.so >/dev/null 2>&1; then
    echo "nocc: a compiled module was built with CC=/bin/false" >&2
    exit 1
fi
PBXGW_EXPECT_ENGINE=python .venv/bin/python -m pytest "$@"
