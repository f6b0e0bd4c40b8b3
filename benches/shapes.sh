#!/usr/bin/env bash
# Throughput of leakwatch on the shapes leak sites publish besides combo lists: a mysqldump,
# an NDJSON export, a Windows-1252 CSV and an XLSX workbook, each beside `rg -c -i -F` on the
# same file, with the planted accounts cross-checked. Prints one table; asserts nothing.
#
#   benches/shapes.sh              # 1 GiB of each, a 200 MiB workbook's XML, 1,000,000 accounts
#   SIZE_MB=256 benches/shapes.sh  # smaller
#   benches/shapes.sh --smoke      # 8 MiB, debug build, one round: CI proves it still runs
#
# Data is generated once under bench-data/ (git-ignored) by `leakwatch-synth shapes-bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb=${SIZE_MB:-1024}
xlsx_mb=${XLSX_MB:-200}
accounts=${ACCOUNTS:-1000000}
rounds=${ROUNDS:-3}
profile=release
if [[ "${1:-}" == "--smoke" ]]; then
  size_mb=8 xlsx_mb=2 accounts=20000 rounds=1 profile=debug
fi
domain=agence-exemple.fr

if [[ $profile == release ]]; then cargo build --release --quiet --bins; else cargo build --quiet --bins; fi
bin=$PWD/target/$profile/leakwatch
synth=$PWD/target/$profile/leakwatch-synth
cores=$(nproc)

data=bench-data/shapes-${size_mb}mb-${xlsx_mb}-${accounts}
if [[ ! -f $data/planted.txt ]]; then
  echo "generating $data ..." >&2
  "$synth" shapes-bench "$data" --size-mb "$size_mb" --xlsx-mb "$xlsx_mb" --accounts "$accounts" --plant 200 >/dev/null
fi
cat >"$data/leakwatch.toml" <<TOML
[organization]
name = "Bench"
domains = ["$domain"]
login_hosts = ["sso.$domain"]
[state]
dir = "$data/state"
[notify]
transport = "file"
from = "bench@$domain"
admins = ["secops@$domain"]
TOML
# The directory is imported once and its state copied before each run (a fresh state, with
# nothing known, for every run alike).
if [[ ! -d $data/state.fresh ]]; then
  rm -rf "$data/state"
  RUST_LOG=leakwatch=warn "$bin" --config "$data/leakwatch.toml" accounts import "$data/accounts.csv" >/dev/null
  mv "$data/state" "$data/state.fresh"
fi
fresh() { rm -rf "$data/state"; cp -r "$data/state.fresh" "$data/state"; }

out=$(mktemp)
trap 'rm -f "$out" "$out.t"' EXIT
measure() { # prints "seconds max_rss_kib"
  /usr/bin/time -o "$out.t" -f "%e %M" "$@" >"$out" 2>&1 || true
  tail -1 "$out.t"
}
declare -A best rss found
keep() {
  if [[ -z ${best[$1]:-} ]] || awk "BEGIN{exit !($2 < ${best[$1]})}"; then best[$1]=$2; fi
  if [[ -z ${rss[$1]:-} ]] || (($3 > ${rss[$1]})); then rss[$1]=$3; fi
}

echo "# leakwatch shapes benchmark: $(date -u +%Y-%m-%d), $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $profile build"
have_rg=false
command -v rg >/dev/null && have_rg=true
files=(dump.sql dump.ndjson dump-cp1252.csv dump.xlsx)
for f in "${files[@]}"; do cat "$data/$f" >/dev/null; done # warm the page cache
for ((round = 1; round <= rounds; round++)); do
  for f in "${files[@]}"; do
    fresh
    read -r s r < <(measure "$bin" --config "$data/leakwatch.toml" ingest --no-progress "$data/$f"); keep "lw:$f" "$s" "$r"
    "$bin" --config "$data/leakwatch.toml" findings list --json >"$out.t" 2>/dev/null
    found[$f]=$(python3 -c 'import json,sys; print(len({f["email"] for f in json.load(open(sys.argv[1]))}))' "$out.t")
    fresh
    read -r s r < <(measure taskset -c 0 "$bin" --config "$data/leakwatch.toml" ingest --no-progress "$data/$f"); keep "lw1:$f" "$s" "$r"
    if $have_rg; then
      read -r s r < <(measure rg -c -i -F "@$domain" "$data/$f"); keep "rg:$f" "$s" "$r"
    fi
  done
done

planted=$(wc -l <"$data/planted.txt")
echo
echo "each file about $size_mb MiB (the workbook: $xlsx_mb MiB of sheet XML); directory: $accounts accounts; $planted planted in each; best of $rounds"
echo
echo "| file              |      MiB | leakwatch s | GB/s | 1 core s | GB/s | RSS MiB | found | rg -c -i -F '@domain' s | GB/s |"
echo "|-------------------|----------|-------------|------|----------|------|---------|-------|-------------------------|------|"
for f in "${files[@]}"; do
  python3 - "$f" "$(stat -c %s "$data/$f")" "${best[lw:$f]}" "${best[lw1:$f]}" "${rss[lw:$f]}" "${found[$f]}" "$planted" "${best[rg:$f]:--1}" <<'PY'
import sys
f, n, lw, lw1, rss, found, planted, rg = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7], float(sys.argv[8])
gb = lambda s: n / max(s, 0.01) / 1e9
rgs = f"{rg:23.2f} | {gb(rg):4.2f}" if rg >= 0 else f"{'-':>23} | {'-':>4}"
print(f"| {f:<17} | {n/1048576:8.1f} | {lw:11.2f} | {gb(lw):4.2f} | {lw1:8.2f} | {gb(lw1):4.2f} | {rss/1024:7.1f} | {found:>5} | {rgs} |")
PY
done
echo "(found: distinct accounts with a finding, of the $planted planted; the workbook's GB/s count its file, compressed)"
