#!/usr/bin/env bash
# Installs what the tests need from Debian, once: Chromium for the browser login
# tests, Redis for shared sessions, PostgreSQL for the postgres config store and
# nginx as the load balancer in front of several gateways (and the bench's reference).
# Safe to run again; skips what is present. Starts PostgreSQL if it is not running.
set -euo pipefail
need=()
pg_fresh=0
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Debian installs nginx in /usr/sbin, which is not on every user's PATH.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
  pg_fresh=1
fi
if [ "${GATEHOUSE_BENCH_DEPS:-}" = 1 ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#need[@]} -gt 0 ]; then
  echo "installing from Debian: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The tests reach PostgreSQL at 127.0.0.1:5432 as user postgres without a password,
# each in a database of its own that it drops (test/helpers/postgres.ts).
version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
if [ "$pg_fresh" = 1 ] && [ -n "$version" ]; then
  # Installed here only for the tests: let the postgres user in over loopback without a password.
  $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
fi
if [ -n "$version" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
