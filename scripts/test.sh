#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Every stage runs even when an earlier
# one failed; the script fails at the end and its last line counts every test of every
# stage: "N passed, N failed, N skipped".
#
# Stages: deps (scripts/deps.sh: installs/starts what the tests need), gofmt, go vet, the
# OpenAPI lint, go test -race over every package (SQLite and the private servers), the pipeline suite
# again on PostgreSQL, a bounded fuzz run of every fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30000x}
REDOCLY_VERSION=1.34.20 # runs on the node 18 of Debian 12 (2.x needs node 20.19+)
out=$(mktemp -d "${TMPDIR:-/tmp}/crm-test.XXXXXX")
trap 'rm -rf "$out"' EXIT
$GO build -o "$out/testsum" ./scripts/testsum || { echo "cannot build scripts/testsum" >&2; exit 1; }

begin=$(date +%s)
status=()
record() { # stage-name rc
  if [ "$2" -eq 0 ]; then status+=("$1 ok"); else status+=("$1 FAILED"); echo "stage-failed $1 (exit $2)" >>"$out/stages.json"; fi
}
stage() { echo; echo "=== $1 ($(( $(date +%s) - begin ))s)"; }
: >"$out/stages.json"

stage "deps: scripts/deps.sh"
scripts/deps.sh; record deps $?

stage "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; record gofmt 1; else record gofmt 0; fi

stage "go vet"
$GO vet ./...; record vet $?

# The OpenAPI document against Redocly's recommended rules (deliberate exceptions, each
# with its reason, in .redocly.lint-ignore.yaml). The version is pinned so a new rule set
# cannot turn the build red by itself.
stage "openapi lint (@redocly/cli $REDOCLY_VERSION)"
npx --yes "@redocly/cli@$REDOCLY_VERSION" lint --format=stylish internal/api/openapi.json 2>&1 | grep -v '[║╔╚]'
record openapi-lint "${PIPESTATUS[0]}"

stage "go test -race ./... (SQLite, private redis-server and PostgreSQL databases, simulators, built binaries, headless Chromium)"
CGO_ENABLED=1 $GO test -json -race -count=1 -timeout 20m ./... 2>&1 | tee "$out/race.json" | "$out/testsum" stream
record race "${PIPESTATUS[0]}"

stage "go test -race ./internal/pipeline on PostgreSQL (CRM_TEST_STORE=postgres)"
CRM_TEST_STORE=postgres CGO_ENABLED=1 $GO test -json -race -count=1 ./internal/pipeline 2>&1 | tee "$out/postgres.json" | "$out/testsum" stream
record postgres "${PIPESTATUS[0]}"

stage "fuzz ($FUZZTIME executions per target)"
FUZZ_JSON=1 scripts/fuzz.sh "$FUZZTIME" 2>&1 | tee "$out/fuzz.json" | "$out/testsum" stream
record fuzz "${PIPESTATUS[0]}"

echo
echo "=== summary ($(( $(date +%s) - begin ))s): ${status[*]}"
"$out/testsum" summary "$out/stages.json" "$out/race.json" "$out/postgres.json" "$out/fuzz.json"
