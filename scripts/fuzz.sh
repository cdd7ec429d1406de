#!/usr/bin/env bash
# Runs every fuzz target in the module for $FUZZTIME each (default 20000x:
# twenty thousand inputs). Targets are found, not listed, so a new Fuzz
# function is never forgotten.
#
# The default is a count, not a duration, on purpose: Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" failure when a
# duration-based -fuzztime ends while a worker is still busy on a loaded
# machine (golang/go#75804, fixed in Go 1.27). A count has no deadline to
# race; a slow machine only takes longer. FUZZTIME=30s still works for
# longer local runs.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20000x}
n=0
start=$SECONDS
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  t0=$SECONDS
  echo "fuzz: $pkg $name ($fuzztime)"
  go test -run=NONE -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
  echo "fuzz: $name took $((SECONDS - t0))s"
  n=$((n + 1))
done < <(grep -rHo --include='*_test.go' -E '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/:func /:/' | sort -u)
echo "fuzz: $n targets ran in $((SECONDS - start))s"
