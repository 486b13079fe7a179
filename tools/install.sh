#!/bin/sh
# Install pbxgw as a systemd service on this box (as root): a venv under $PREFIX
# (/opt/pbxgw), the unit, the sysusers group, the udev rule for headsets, and an example
# config at /etc/pbxgw/config.toml unless one is there. Run again to upgrade: the config
# and the queue (/var/lib/pbxgw) are kept. DESTDIR=dir installs under dir instead, for a
# package build (systemd is then not told).
set -eu
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/opt/pbxgw}
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
root="$DESTDIR"

"$PYTHON" -m venv "$root$PREFIX/venv"
# A download cut short on the way (a site's unsteady link: pip then reports a hash
# mismatch or a reset) fails the install; it is tried once more before giving up.
pip="$root$PREFIX/venv/bin/pip"
"$pip" install -q --disable-pip-version-check . || {
    echo "pbxgw: pip install failed (above); trying once more" >&2
    "$pip" install -q --disable-pip-version-check .
}
install -D -m 0644 systemd/pbxgw.service "$root/etc/systemd/system/pbxgw.service"
sed -i "s|/opt/pbxgw|$PREFIX|g" "$root/etc/systemd/system/pbxgw.service"
install -D -m 0644 systemd/pbxgw.sysusers.conf "$root/usr/lib/sysusers.d/pbxgw.conf"
install -D -m 0644 systemd/70-pbxgw-headsets.rules "$root/etc/udev/rules.d/70-pbxgw-headsets.rules"
install -D -m 0644 docs/operations.md "$root$PREFIX/share/doc/operations.md"
if [ ! -e "$root/etc/pbxgw/config.toml" ]; then
    install -D -m 0640 docs/config.example.toml "$root/etc/pbxgw/config.toml"
    new_config=yes
fi
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemd-sysusers /usr/lib/sysusers.d/pbxgw.conf
    udevadm control --reload && udevadm trigger --subsystem-match=hidraw
    systemctl daemon-reload
fi
echo "pbxgw installed in $root$PREFIX ($("$root$PREFIX/venv/bin/pbxgw" --version))."
if [ "${new_config:-}" = yes ]; then
    echo "Next: edit /etc/pbxgw/config.toml (gateway id and site, the broker, the PBX sources),"
else
    echo "Next: your /etc/pbxgw/config.toml was kept;"
fi
echo "check it with: $PREFIX/venv/bin/pbxgw check-config /etc/pbxgw/config.toml"
echo "then: systemctl enable --now pbxgw (or systemctl restart pbxgw after an upgrade),"
echo "and: $PREFIX/venv/bin/pbxgw status. More in $PREFIX/share/doc/operations.md."
