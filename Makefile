# The two commands the README starts with. Each does its own set-up on a fresh machine.
PYTHON ?= python3

.PHONY: setup services database run test bench

setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'

services:
	@bash tools/ensure_services.sh

database: services
	@psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='tickstock'" | grep -q 1 \
	  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE tickstock" >/dev/null
	$(PYTHON) -m tickstock.actors --migrate

run: setup database
	$(PYTHON) -m tickstock.actors $(ARGS)

test: setup services
	$(PYTHON) -m pytest -q

# make bench ARGS="--scenario throughput --rate 200000 --seconds 60"; --plot needs the bench extra.
bench: setup services
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PYTHON) -m tickstock.bench $(or $(ARGS),--scenario latency)
