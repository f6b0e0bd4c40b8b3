#!/usr/bin/env bash
# Ingest benchmark: leakwatch on a generated combo list, beside rg and grep on the same
# file for scale, and the same ingest on a small file to show that memory stays flat.
#
#   benches/ingest.sh            # 1 GiB combo list, 100,000 accounts
#   benches/ingest.sh 4096       # 4 GiB
#   benches/ingest.sh --smoke    # 8 MiB, for CI: proves the benchmark still runs
#
# Data is generated once under bench-data/ (git-ignored) by leakwatch-synth. Figures are
# printed, never asserted: speed is measured here, not in tests.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb=1024
small_mb=10
profile=release
# The smoke run only proves the script works: a debug build saves CI a release build.
if [[ "${1:-}" == "--smoke" ]]; then size_mb=8; small_mb=2; profile=debug; elif [[ -n "${1:-}" ]]; then size_mb=$1; fi
accounts=${ACCOUNTS:-100000}
domain=agence-exemple.fr

if [[ $profile == release ]]; then cargo build --release --quiet --bins; else cargo build --quiet --bins; fi
bin=target/$profile/leakwatch
synth=target/$profile/leakwatch-synth

# Runs a command with stdout to /dev/null; prints "seconds max_rss_kib" (GNU time).
measure() {
  local t
  t=$(mktemp)
  # Output to a file, not /dev/null: GNU grep stops at the first match when it sees /dev/null.
  /usr/bin/time -o "$t" -f "%e %M" "$@" >"$t.out" 2>&1 || true
  rm -f "$t.out"
  tail -1 "$t"
  rm -f "$t"
}

prepare() { # size_mb -> dir
  local dir=bench-data/${1}mb-${accounts}-$profile
  if [[ ! -f $dir/combo.txt ]]; then
    "$synth" bench "$dir" --size-mb "$1" --accounts "$accounts" --plant 100 >/dev/null
  fi
  cat >"$dir/leakwatch.toml" <<TOML
[organization]
name = "Bench"
domains = ["$domain"]
login_hosts = ["sso.$domain"]
[state]
dir = "$dir/state"
[notify]
transport = "file"
from = "bench@$domain"
admins = ["secops@$domain"]
TOML
  rm -rf "$dir/state"
  "$bin" --config "$dir/leakwatch.toml" accounts import "$dir/accounts.csv" >/dev/null
  echo "$dir"
}

big=$(prepare "$size_mb")
small=$(prepare "$small_mb")
file=$big/combo.txt
bytes=$(stat -c %s "$file")
lines=$(wc -l <"$file")
cat "$file" >/dev/null # warm the page cache for every contender alike

row() { # name seconds rss_kib
  python3 - "$@" "$bytes" "$lines" <<'PY'
import sys
name, secs, rss, nbytes, nlines = sys.argv[1], max(float(sys.argv[2]), 0.01), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"| {name:<34} | {secs:8.2f} | {nbytes/secs/1e6:9.1f} | {nlines/secs/1e6:8.2f} | {rss/1024:8.1f} |")
PY
}

echo "file: $file, $((bytes / 1048576)) MiB, $lines lines; directory: $accounts accounts; $(nproc) cores; $profile build"
echo
echo "| command                            |  seconds |      MB/s |  Mlines/s |  RSS MiB |"
echo "|------------------------------------|----------|-----------|-----------|----------|"
for i in 1 2; do
  rm -rf "$big/state/outbox"
  read -r s r < <(measure "$bin" --config "$big/leakwatch.toml" ingest --no-progress "$file")
  [[ $i == 2 ]] && row "leakwatch ingest" "$s" "$r"
  if command -v rg >/dev/null; then
    read -r s r < <(measure rg -c -F "@$domain" "$file")
    [[ $i == 2 ]] && row "rg -c -F '@$domain'" "$s" "$r"
  fi
  read -r s r < <(measure grep -c -F "@$domain" "$file")
  [[ $i == 2 ]] && row "grep -c -F '@$domain'" "$s" "$r"
  read -r s r < <(measure sh -c 'exec cat "$1" >/dev/null' cat "$file")
  [[ $i == 2 ]] && row "cat (read only)" "$s" "$r"
done
read -r s r < <(measure "$bin" --config "$small/leakwatch.toml" ingest --no-progress "$small/combo.txt")
echo
echo "memory: ingest of ${small_mb} MiB peaked at $((r / 1024)) MiB RSS; of ${size_mb} MiB, see above"
"$bin" --config "$big/leakwatch.toml" findings list | tail -1
