#!/usr/bin/env bash
# Runs every fuzz target in the module for $FUZZTIME (default 5s) each.
# Targets are found, not listed, so a new Fuzz function is never forgotten.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
n=0
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz: $pkg $name ($fuzztime)"
  go test -run=NONE -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
  n=$((n + 1))
done < <(grep -rHo --include='*_test.go' -E '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/:func /:/' | sort -u)
echo "fuzz: $n targets ran"
