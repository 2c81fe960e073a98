#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 for postgres:heportal and the
# heportal database exists; install and start Debian's server where none is
# reachable. Idempotent.
set -euo pipefail
export PGPASSWORD=heportal
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null 2>&1; then
  # A fresh Debian server asks TCP clients for a password: give postgres one.
  runuser -u postgres -- psql -qc "alter user postgres password 'heportal'"
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='heportal'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database heportal"
fi
