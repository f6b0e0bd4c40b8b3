#!/usr/bin/env bash
# Throughput of leakwatch against the ways people search dumps by hand, on the same file in
# the same run, with a correctness cross-check. Prints one table; asserts nothing (speed is
# measured here, never in tests).
#
#   benches/compare.sh              # 1 GiB list, 1,000,000 accounts, best of 3 rounds
#   SIZE_MB=4096 benches/compare.sh # bigger list
#   benches/compare.sh --smoke      # 8 MiB, debug build, one round: CI proves it still runs
#
# Data is generated once under bench-data/ (git-ignored) by leakwatch-synth: synthetic, no
# real credential anywhere. Contenders run in alternation, each round in the same order, and
# the best time of the rounds is kept (the machine's noise only ever adds time).
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb=${SIZE_MB:-1024}
accounts=${ACCOUNTS:-1000000}
rounds=${ROUNDS:-3}
cap=${CAP_SECONDS:-120} # longest a by-hand contender may run
# and the most address space it may take (half the machine's memory), so that a contender
# that blows up fails alone instead of waking the kernel's OOM killer.
mem_cap=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) * 512))
import_accounts=${IMPORT_ACCOUNTS:-10000000}
profile=release
smoke=false
if [[ "${1:-}" == "--smoke" ]]; then
  smoke=true size_mb=8 accounts=20000 rounds=1 import_accounts=20000 profile=debug cap=5
fi
domain=agence-exemple.fr

if [[ $profile == release ]]; then cargo build --release --quiet --bins; else cargo build --quiet --bins; fi
bin=$PWD/target/$profile/leakwatch
synth=$PWD/target/$profile/leakwatch-synth
cores=$(nproc)

data=bench-data/${size_mb}mb-${accounts}
if [[ ! -f $data/planted.txt ]]; then
  echo "generating $data ..." >&2
  "$synth" bench "$data" --size-mb "$size_mb" --accounts "$accounts" --plant 200 >/dev/null
  rm -f "$data/combo.txt.gz" "$data/combo.zip"
fi
[[ -f $data/combo.txt.gz ]] || gzip -6 -c "$data/combo.txt" >"$data/combo.txt.gz"
[[ -f $data/combo.zip ]] || (cd "$data" && zip -q -6 combo.zip combo.txt)
file=$data/combo.txt
# A small list cut from the big one: memory must not depend on the input's size.
head -c $((10 << 20)) "$file" | head -n -1 >"$data/small.txt"

# One config and state directory per data set; `fresh` starts the state over.
config() {
  cat >"$1/leakwatch.toml" <<TOML
[organization]
name = "Bench"
domains = ["$domain"]
login_hosts = ["sso.$domain"]
[state]
dir = "$1/state"
[notify]
transport = "file"
from = "bench@$domain"
admins = ["secops@$domain"]
TOML
}
config "$data"
fresh() { rm -rf "$data/state"; RUST_LOG=leakwatch=warn "$bin" --config "$data/leakwatch.toml" accounts import "$data/accounts.csv" >/dev/null; }

# Runs a command; prints "seconds max_rss_kib exit_status" (GNU time); output goes to $out.
out=$(mktemp)
trap 'rm -f "$out" "$out.t"' EXIT
measure() {
  # Output to a file, not /dev/null: GNU grep stops at the first match when it sees /dev/null.
  /usr/bin/time -o "$out.t" -f "%e %M %x" "$@" >"$out" 2>&1 || true
  tail -1 "$out.t"
}

declare -A best rss failed
keep() { # name seconds rss [exit status]
  # 124: stopped by `timeout`; 128+N: killed by signal N (137: the kernel's OOM killer).
  case ${4:-0} in
    124) failed[$1]="stopped at ${cap} s" ;;
    134 | 137) failed[$1]="out of memory at $((mem_cap >> 30)) GiB" ;;
    1[2-9][0-9]) failed[$1]="killed by a signal" ;;
  esac
  if [[ -z ${best[$1]:-} ]] || awk "BEGIN{exit !($2 < ${best[$1]})}"; then best[$1]=$2; fi
  if [[ -z ${rss[$1]:-} ]] || ((${3} > ${rss[$1]})); then rss[$1]=$3; fi
}

echo "# leakwatch benchmark: $(date -u +%Y-%m-%d), $cores cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $profile build"

# --- the directory: import and filter load -----------------------------------------------
imp=bench-data/import-${import_accounts}
if [[ ! -f $imp/accounts.csv ]]; then
  "$synth" bench "$imp" --size-mb 1 --accounts "$import_accounts" --plant 10 >/dev/null
fi
config "$imp"
rm -rf "$imp/state"
read -r s r x < <(measure "$bin" --config "$imp/leakwatch.toml" accounts import "$imp/accounts.csv")
import_line=$(grep '^imported' "$out" || true)
RUST_LOG=info "$bin" --config "$imp/leakwatch.toml" ingest --no-progress /dev/null >"$out" 2>&1 || true
load_ms=$(grep -o 'filter loaded.*' "$out" | grep -o 'ms=[0-9]*' | cut -d= -f2)
echo
echo "directory: import of $import_accounts accounts took ${s} s (peak RSS $((r / 1024)) MiB); filter load at start: ${load_ms} ms"
echo "  $import_line"

# --- the list -------------------------------------------------------------------------------
fresh
bytes=$(stat -c %s "$file")
lines=$(wc -l <"$file")
cat "$file" "$data/combo.txt.gz" "$data/combo.zip" >/dev/null # warm the page cache for all alike

lw=("$bin" --config "$data/leakwatch.toml" ingest --no-progress)
have_rg=false
command -v rg >/dev/null && have_rg=true
for ((round = 1; round <= rounds; round++)); do
  read -r s r x < <(measure taskset -c 0 "${lw[@]}" --threads 1 "$file"); keep lw1 "$s" "$r" "$x"
  read -r s r x < <(measure "${lw[@]}" --threads "$cores" "$file"); keep lw "$s" "$r" "$x"
  if $have_rg; then
    read -r s r x < <(measure rg -c -i -F "@$domain" "$file"); keep rg_domain "$s" "$r" "$x"
    # `-i` with many patterns leaves ripgrep's literal search: it is stopped at $cap s and
    # shown as "≥"; the case-sensitive search (which misses upper-case addresses) beside it.
    read -r s r x < <(measure prlimit --as="$mem_cap" timeout "$cap" rg -c -i -F -f "$data/accounts.txt" "$file"); keep rg_accounts_i "$s" "$r" "$x"
    read -r s r x < <(measure prlimit --as="$mem_cap" timeout "$cap" rg -c -F -f "$data/accounts.txt" "$file"); keep rg_accounts "$s" "$r" "$x"
  fi
  read -r s r x < <(measure grep -c -i -F "@$domain" "$file"); keep grep_domain "$s" "$r" "$x"
  read -r s r x < <(measure sh -c 'exec cat "$1" >/dev/null' cat "$file"); keep cat "$s" "$r" "$x"
  read -r s r x < <(measure sh -c 'exec gzip -dc "$1" >/dev/null' gzip "$data/combo.txt.gz"); keep gunzip "$s" "$r" "$x"
  read -r s r x < <(measure "${lw[@]}" --threads "$cores" "$data/combo.txt.gz"); keep lw_gz "$s" "$r" "$x"
  read -r s r x < <(measure sh -c 'exec unzip -p "$1" >/dev/null' unzip "$data/combo.zip"); keep unzip "$s" "$r" "$x"
  read -r s r x < <(measure "${lw[@]}" --threads "$cores" "$data/combo.zip"); keep lw_zip "$s" "$r" "$x"
  read -r s r x < <(measure "${lw[@]}" --threads "$cores" "$data/small.txt"); keep lw_small "$s" "$r" "$x"
done
# The naive script is slow: once is enough to know how slow.
read -r s r x < <(measure python3 benches/naive.py "$data/accounts.txt" "$file"); keep naive "$s" "$r" "$x"
naive_line=$(cat "$out")

row() { # label key
  local k=$2
  [[ -n ${best[$k]:-} ]] || return 0
  local label=$1
  [[ -z ${failed[$k]:-} ]] || label="$label, ${failed[$k]}"
  python3 - "$label" "${best[$k]}" "${rss[$k]}" "$bytes" "$lines" "${best[lw]}" "${failed[$k]:+1}" <<'PY'
import sys
label, secs, rss, nbytes, nlines, lw, failed = sys.argv[1], max(float(sys.argv[2]), 0.01), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), max(float(sys.argv[6]), 0.01), sys.argv[7]
# A run that did not finish is a lower bound on its time.
ge = ">=" if failed else "  "
le = "<=" if ge.strip() else "  "
print(f"| {label:<55} | {ge}{secs:7.2f} | {le}{nbytes/secs/1e9:6.3f} | {le}{nlines/secs/1e6:8.1f} | {rss/1024:7.1f} | {ge}{secs/lw:9.2f} |")
PY
}

echo
echo "list: $file, $((bytes / 1048576)) MiB, $lines lines; directory: $accounts accounts; best of $rounds"
echo
echo "| command                                                 |   seconds |     GB/s |   Mlines/s | RSS MiB |   time / lw |"
echo "|---------------------------------------------------------|-----------|----------|------------|---------|-------------|"
row "leakwatch ingest, $cores threads" lw
row "leakwatch ingest, 1 thread (taskset 1 core)" lw1
row "rg -c -i -F '@$domain'" rg_domain
row "rg -c -i -F -f accounts.txt" rg_accounts_i
row "rg -c -F -f accounts.txt (case-sensitive)" rg_accounts
row "grep -c -i -F '@$domain'" grep_domain
row "naive Python (split, lower, sha1, set)" naive
row "cat (read only)" cat
echo
echo "| archive                                                 |   seconds |     GB/s |   Mlines/s | RSS MiB |   time / lw |"
echo "|---------------------------------------------------------|-----------|----------|------------|---------|-------------|"
row "gzip -dc combo.txt.gz" gunzip
row "leakwatch ingest combo.txt.gz" lw_gz
row "unzip -p combo.zip" unzip
row "leakwatch ingest combo.zip" lw_zip
echo "(GB/s and Mlines/s of archives count the uncompressed list)"

# --- correctness: the fast path against the reference path ------------------------------------
summary() { grep -E '^(ingest|filter):' "$out" | sed -E 's/; mails:.*//'; }
fresh
"${lw[@]}" --threads "$cores" "$file" >"$out" 2>&1
fast=$(summary)
"$bin" --config "$data/leakwatch.toml" findings list --json >"$out.t"
found=$(python3 -c 'import json,sys; print("\n".join(sorted({f["email"] for f in json.load(open(sys.argv[1]))})))' "$out.t")
fresh
"${lw[@]}" --reference "$file" >"$out" 2>&1
reference=$(summary)
echo
echo "cross-check, fast path:      $fast" | head -1
echo "cross-check, reference path: $reference" | head -1
echo "$fast" | tail -1
verdict=ok
[[ "$fast" == "$reference" ]] || verdict="DIFFERENT from the reference"
[[ "$found" == "$(cat "$data/planted.txt")" ]] || verdict="$verdict; accounts found differ from the planted ones"
echo "counts and findings: $verdict ($(echo "$found" | grep -c @) of $(wc -l <"$data/planted.txt") planted accounts found); naive script: $naive_line"

# --- memory -------------------------------------------------------------------------------------
echo
echo "memory: peak RSS $((rss[lw_small] / 1024)) MiB on a 10 MiB list, $((rss[lw] / 1024)) MiB on $((bytes / 1048576)) MiB"
python3 - "${best[lw1]}" "${best[lw]}" "${best[rg_domain]:-0}" "${best[rg_accounts_i]:-0}" "${best[naive]}" "${best[gunzip]}" "${best[lw_gz]}" "${best[unzip]}" "${best[lw_zip]}" "$bytes" "${failed[rg_accounts_i]:+1}" <<'PY'
import sys
lw1, lw, rgd, rga, naive, gz, lwgz, uz, lwzip, n = map(float, sys.argv[1:11])
failed = sys.argv[11] == "1"
gb = lambda s: n / max(s, 0.01) / 1e9
print(f"targets: 1 core {gb(lw1):.2f} GB/s (>= 0.6); all cores {gb(lw):.2f} GB/s (>= 1.1), scaling {lw1/lw:.2f}x (>= 1.8)")
if rga:  # ripgrep was there
    print(f"         vs rg '@domain' {rgd/lw:.2f}x (>= 0.75); vs rg -i -f accounts {'at least ' if failed else ''}{rga/lw:.1f}x (>= 2); vs naive {naive/lw:.0f}x (>= 25)")
print(f"         gzip {lwgz/gz:.2f}x the decompressor's time (<= 1.3); zip {lwzip/uz:.2f}x (<= 1.3)")
PY
