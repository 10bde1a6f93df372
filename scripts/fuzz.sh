#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded number of executions each, all of
# them even when one fails (the script fails at the end). Minimisation of new inputs is
# bounded too: by default Go spends up to a minute minimising each new interesting input,
# which stalls a short CI run. FUZZ_JSON=1 makes go test print test2json events (for
# scripts/test.sh's summary).
set -uo pipefail
t="${1:-30000x}"
json=()
[ -n "${FUZZ_JSON:-}" ] && json=(-json)
found=0
failed=0
while IFS= read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    found=1
    echo "fuzz $pkg $target ($t)"
    go test "${json[@]}" -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -fuzzminimizetime 2000x "$pkg" || failed=1
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
if [ "$found" -eq 0 ]; then echo "no fuzz targets"; fi
exit "$failed"
