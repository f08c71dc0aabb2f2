#!/usr/bin/env bash
# Installs what the stack needs: the Debian packages that are missing, then the project's .venv.
# Idempotent and quick when everything is in place; used by ./run and .ci/run.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# command -> Debian package; mariadbd lives in /usr/sbin, which a user's PATH may lack.
# The Galera cluster (stack/galera.py) needs the provider library, and its state-transfer script needs
# mariabackup, socat and ss, even for an incremental transfer.
declare -A PACKAGES=([redis-server]=redis-server [mariadbd]=mariadb-server [wrk]=wrk [socat]=socat
                     [mariabackup]=mariadb-backup [ss]=iproute2)
# `bootstrap.sh --test` (./run test, CI): what only the tests use: promtool and Prometheus for the metrics and
# the dashboard, a headless browser for the status page, logrotate for docs/logrotate.conf.
if [ "${1:-}" = "--test" ]; then
    PACKAGES+=([promtool]=prometheus [chromium]=chromium [logrotate]=logrotate)
fi
missing=()
for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${PACKAGES[$cmd]}")
done
[ -e /usr/lib/galera/libgalera_smm.so ] || missing+=(galera-4)
if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    die "python3 >= 3.11 is needed (found: $(python3 --version 2>&1 || echo none))"
fi
if [ ! -x .venv/bin/python ] && ! python3 -m venv --help >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 \
        || die "missing: ${missing[*]}; no apt-get here, install them with your package manager"
    [ "$(id -u)" -eq 0 ] \
        || die "missing: ${missing[*]}; run as root, or: sudo apt-get install -y ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
# Reinstall only when the packaging changed since the last install.
stamp=.venv/.cachegate-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing the project into .venv (log: .venv/pip-install.log)"
    if ! .venv/bin/pip install -e '.[test,loadtest]' >.venv/pip-install.log 2>&1; then
        tail -n 20 .venv/pip-install.log >&2
        die "pip install failed"
    fi
    touch "$stamp"
fi
