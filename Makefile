# The README's two commands: `make demo` and `make test`. Each sets up what it needs first:
# .venv with pbxgw installed, and Debian's mosquitto, openssl and systemd-analyze.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test chaos bench packages install

$(VENV)/.installed: pyproject.toml setup.py native/_smdr_c.pyx native/*.pxi tools/venv.sh
	sh tools/venv.sh
	touch $@

packages:
	sh tools/debian-packages.sh

demo: $(VENV)/.installed packages
	$(PY) -m tools.demo

# The whole suite three ways: on the compiled parser (where no test may be skipped), on
# the pure-Python reference, and installed where there is no C compiler (tools/nocc.sh).
# The collector's tests (marked central) read no PBX record: they run in the first only.
test: $(VENV)/.installed packages
	PBXGW_EXPECT_ENGINE=cython PBXGW_NO_SKIPS=1 $(PY) -m pytest
	PBXGW_PUREPYTHON=1 $(PY) -m pytest -m "not central"
	sh tools/nocc.sh -m "not central"

# Not part of `make test`: N cycles of faults (kill -9, broker restarts, reload storms,
# power cuts, a second instance, a full disk) while M records flow (tools/chaos.py); a storm
# of 200 reloads on each kind of source (tools/reload_storm.py); then the central side's (tools/chaos_central.py): gateway, broker and collector killed,
# PostgreSQL restarted, every record counted in the database, the summaries checked against the
# calls; then the same with two collectors on one database.
chaos: $(VENV)/.installed packages
	$(PY) -m tools.chaos --cycles 50 --records 50000 --source file
	$(PY) -m tools.chaos --cycles 20 --records 5000 --source pty --faults broker
	$(PY) -m tools.chaos --cycles 20 --records 5000 --source pty --faults gateway
	$(PY) -m tools.chaos --cycles 36 --records 20000 --source file --faults all
	$(PY) -m tools.chaos --cycles 36 --records 10000 --source pty --faults all
	$(PY) -m tools.reload_storm --source all --records 20000 --reloads 200 --every 0.05
	$(PY) -m tools.chaos_central --cycles 50 --records 50000
	$(PY) -m tools.chaos_central --cycles 24 --records 20000 --collectors 2

bench: $(VENV)/.installed packages
	$(PY) -m bench.parse --profile panasonic-kx-tda
	$(PY) -m bench.parse --profile avaya-ipo
	$(PY) -m bench.delivery

# As root: pbxgw as a systemd service (tools/install.sh says what to edit next).
install:
	sh tools/install.sh
