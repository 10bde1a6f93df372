#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian/Ubuntu machine:
#  - node and npm when npx is missing (the OpenAPI lint runs @redocly/cli through npx);
#  - redis-server built with TLS (the tests start private instances of it: plain, with an
#    ACL user, TLS-only with a generated CA, and master + replica + sentinel through
#    `redis-server --sentinel`, so the separate redis-sentinel package is not needed);
#  - a running PostgreSQL server on 127.0.0.1:5432 that lets the role "postgres" connect
#    over TCP without a password (the tests create and drop their own databases on it;
#    see internal/testpg). When a server already answers there, nothing is changed.
# Go itself must already be installed (>= 1.26). Idempotent; needs root or sudo only when
# something is missing. The machine may have no systemd: clusters are started with
# pg_ctlcluster --skip-systemctl-redirect.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
apt_updated=""
apt_install() {
  echo "installing: $*"
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# --- redis-server -------------------------------------------------------------------
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -ne 0 ]; then
  apt_install "${need[@]}"
  # The Debian package starts a system redis on 6379; the tests never use it.
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server still missing after install" >&2; exit 1; }
fi
# A build without TLS rejects --tls-port as a bad directive; with TLS and no port to
# listen on it exits at once saying so.
# (The output is read whole first: grep -q would close the pipe early, and with pipefail the
# SIGPIPE of redis-server would read as "no TLS".)
redis_has_tls() {
  local out
  out=$(redis-server --port 0 --tls-port 0 --save "" 2>&1 || true)
  grep -q "not to listen anywhere\|not listen anywhere" <<<"$out"
}
if ! redis_has_tls; then
  echo "redis-server on PATH ($(command -v redis-server)) has no TLS support; installing Debian's"
  apt_install redis-server
  redis_has_tls || { echo "redis-server still lacks TLS support (TestRedisTLS* needs it)" >&2; exit 1; }
fi

# --- node and npm (the OpenAPI lint runs @redocly/cli through npx) ------------------
if ! command -v npx >/dev/null 2>&1; then
  apt_install nodejs npm
  command -v npx >/dev/null 2>&1 || { echo "npx still missing after installing nodejs and npm" >&2; exit 1; }
fi

# --- chromium (the headless-browser test, internal/browser) -------------------------
# Placed before the PostgreSQL section, which exits early when a server already answers.
# A CJK font too (a small one, when fontconfig knows none), or the Chinese screenshot shows
# boxes instead of characters.
need=()
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
  need+=(fonts-wqy-microhei)
fi
if [ ${#need[@]} -ne 0 ]; then
  apt_install "${need[@]}"
  { [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; } || { echo "chromium still missing after install" >&2; exit 1; }
fi

# --- PostgreSQL ---------------------------------------------------------------------
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    # No client tools yet: is anything listening?
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}

pg_login_works() {
  command -v psql >/dev/null 2>&1 || return 0 # cannot check without psql; the tests will tell
  PGPASSWORD="" PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
    -c 'SELECT 1' >/dev/null 2>&1
}

pg_server_installed() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  command -v postgres >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Prints "<version> <cluster>" of the cluster configured for $PG_PORT, if any.
pg_cluster_on_port() {
  pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'
}

# Ensures pg_hba.conf starts with a trust rule for $PG_USER over TCP from 127.0.0.1
# (the first matching line wins). Returns 0 when it changed the file.
pg_trust_localhost() {
  local hba=$1
  local rule="host    all             $PG_USER        127.0.0.1/32            trust"
  if $SUDO grep -Eq "^[[:space:]]*host[[:space:]]+all[[:space:]]+($PG_USER|all)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust([[:space:]]|$)" "$hba"; then
    return 1
  fi
  echo "pg_hba: trusting TCP connections of $PG_USER from 127.0.0.1 ($hba)"
  local tmp
  tmp=$(mktemp)
  { echo "# added by cn-relay-manager scripts/deps.sh for the test suite"; echo "$rule"; $SUDO cat "$hba"; } >"$tmp"
  $SUDO cp "$tmp" "$hba" # cp keeps the file's owner and mode
  rm -f "$tmp"
  return 0
}

if pg_answers; then
  if ! pg_login_works; then
    echo "warning: a PostgreSQL server answers on $PG_HOST:$PG_PORT but user $PG_USER cannot log in" \
      "without a password; the tests need trust for 127.0.0.1 (or set CRM_TEST_PG_ADDR / CRM_TEST_PG_USER" \
      "/ CRM_TEST_PG_PASSWORD)" >&2
  fi
  exit 0
fi

if ! pg_server_installed; then
  apt_install postgresql postgresql-client
  pg_server_installed || { echo "PostgreSQL still missing after install" >&2; exit 1; }
fi

cluster=$(pg_cluster_on_port)
if [ -z "$cluster" ]; then
  if [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
    echo "PostgreSQL clusters exist but none is configured for port $PG_PORT:" >&2
    pg_lsclusters >&2
    exit 1
  fi
  version=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sed 's|^/usr/lib/postgresql/||; s|/.*||' | sort -V | tail -n 1)
  echo "creating PostgreSQL $version cluster main on port $PG_PORT"
  $SUDO pg_createcluster --port "$PG_PORT" "$version" main
  cluster="$version main"
fi
read -r version name <<<"$cluster"

hba=$(pg_conftool -s "$version" "$name" show hba_file 2>/dev/null || echo "/etc/postgresql/$version/$name/pg_hba.conf")
changed=""
if pg_trust_localhost "$hba"; then changed=1; fi

status=$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $4 }')
case "$status" in
  online*)
    if [ -n "$changed" ]; then
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload
    fi
    ;;
  *)
    echo "starting PostgreSQL $version/$name"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
    ;;
esac

for _ in $(seq 1 30); do
  pg_answers && break
  sleep 1
done
if ! pg_answers; then
  echo "PostgreSQL $version/$name does not answer on $PG_HOST:$PG_PORT; see /var/log/postgresql/postgresql-$version-$name.log" >&2
  exit 1
fi
if ! pg_login_works; then
  echo "PostgreSQL answers on $PG_HOST:$PG_PORT but user $PG_USER cannot log in without a password (check $hba)" >&2
  exit 1
fi
echo "PostgreSQL $version/$name is running on $PG_HOST:$PG_PORT"
