#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it. Every stage runs even when an earlier
# one failed; the script fails at the end and its last line counts every test of every
# stage: "N passed, N failed, N skipped".
#
# Stages: deps (scripts/deps.sh: installs/starts what the tests need), gofmt, go vet,
# go test -race over every package (SQLite and the private servers), the pipeline suite
# again on PostgreSQL, a bounded fuzz run of every fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30000x}
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
