#!/usr/bin/env bash
# Install everything HE Portal needs on a Debian machine, idempotently:
# Debian packages (redis, chromium, headers for ovirtsdk4's and python-ldap's C parts,
# slapd for the directory login tests, nginx for the TLS proxy tests), a venv
# in .venv with the pinned requirements. Safe to run again; fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(redis-server postgresql chromium libxml2-dev libcurl4-openssl-dev libssl-dev
              gcc python3-dev python3-venv postgresql-client openssh-client bubblewrap
              libldap2-dev libsasl2-dev slapd ldap-utils nginx
              jq)  # jq: docs/api.md's curl examples, run by tests/test_api_docs.py

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "bootstrap: run as root to install Debian packages" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python requirements"
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip install -q -r requirements.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import django, ovirtsdk4, channels, rq, paramiko, asyncssh, aiohttp, playwright, ldap, django_auth_ldap"
  echo "$want" > "$stamp"
fi

# The lab's hosts run their release's Python (docs/lab.md, "The hosts' userland"): el6/el7
# Python 2.7, el8 3.6, el9 3.9, pyenv's builds that this machine's image ships. Without
# one, that OS's python is this machine's python3 and the userland tests fail.
for series in 2.7 3.6 3.9; do
  ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$series".* >/dev/null 2>&1 ||
    echo "bootstrap: warning: no pyenv Python $series for the lab's hosts" >&2
done
