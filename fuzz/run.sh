#!/usr/bin/env bash
# The long fuzz run of issue 16's battery. Not part of .ci/run (it takes an hour); its last
# figures are in the README (Fuzzing).
#
# 1. Every cargo-fuzz target (fuzz/fuzz_targets) for SECS seconds each (default 600), on
#    one core, seeded with the generators' output (stealer archives of every packing, every
#    shape of dump, the hostile set); crashes land in fuzz/artifacts/TARGET/.
# 2. A mutation run of the release binary: each file of the hostile archive set mutated
#    MUTANTS times (bytes flipped, cut, spliced, duplicated), each batch given to
#    `leakwatch ingest`; any exit by a signal (abort, segfault) or a run past 900 s fails.
#
# Usage: fuzz/run.sh            SECS=60 MUTANTS=50 fuzz/run.sh    (a short run)
#        JOBS=2 fuzz/run.sh     (two targets at a time, on two cores)
#        TARGETS="sheet rows" MUTANTS=0 fuzz/run.sh    (some targets, no mutation run)
# Installs what it needs: the nightly toolchain (rustup) and cargo-fuzz (crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-600}
mutants=${MUTANTS:-400}
report=target/fuzz-report.txt
: > "$report"
say() { echo "$*" | tee -a "$report"; }

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds from the generators (synthetic; nothing real).
seeds=target/fuzz-seeds
rm -rf "$seeds"
cargo build --quiet --release --bins
synth=target/release/leakwatch-synth
"$synth" stealer "$seeds/stealer" >/dev/null
"$synth" shapes --hostile "$seeds/shapes" >/dev/null
"$synth" scenario "$seeds/scenario" >/dev/null

corpus() { # TARGET, then find(1) tests picking its seeds
  local t=$1; shift
  mkdir -p "fuzz/corpus/$t"
  find "$seeds" -type f \( "$@" \) -size -1024k -exec cp -t "fuzz/corpus/$t" {} + 2>/dev/null || true
}
corpus archive -name '*.zip' -o -name '*.7z' -o -name '*.tar*' -o -name '*.gz' -o -name '*.tgz' -o -name '*.rar'
corpus sheet -name '*.xlsx' -o -name '*.ods'
corpus device_file -iname '*.txt' -path '*/*/*'
for t in parse_stream scan_lines rows; do
  corpus "$t" -name '*.txt' -o -name '*.csv' -o -name '*.sql' -o -name '*.json' -o -name '*.ndjson' -o -name '*.tsv' -o -name '*.ldif' -o -name '*.vcf' -o -name '*.eml' -o -name '*.html' -o -name '*.xml'
done

jobs=${JOBS:-1}
say "fuzz run $(date -u +%FT%TZ), ${secs} s per target, $jobs target(s) at a time, $(nproc) cores, commit $(git rev-parse --short HEAD)"
fuzz_one() {
  local t=$1 log=target/fuzz-$1.log rc build=() extra=()
  # scan_lines runs worker threads: LeakSanitizer counts std's per-thread channel context
  # (112 bytes, freed by the thread's exit, not by us) as a leak.
  [[ $t == scan_lines ]] && extra+=(-detect_leaks=0)
  # calamine overflows on long column letters with overflow checks on (it wraps in release
  # builds, as leakwatch ships; fuzz/regressions/sheet/): fuzz the sheet as it ships.
  [[ $t == sheet ]] && build+=(-O)
  set +e
  (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -max_len=1048576 -print_final_stats=1 "${extra[@]}") > "$log" 2>&1
  rc=$?
  set -e
  local runs cov crashes
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
  echo "  $t: exit $rc, $runs runs, coverage $cov edges, $crashes crash file(s)" > "target/fuzz-line-$t.txt"
}
targets=(${TARGETS:-$(ls fuzz/fuzz_targets | sed 's/\.rs$//')})
# Built once before the lanes start, so that they do not build the same crates at once.
(cd fuzz && cargo +nightly fuzz build "${targets[0]}" >/dev/null 2>&1) || true
for ((lane = 0; lane < jobs; lane++)); do
  (for ((i = lane; i < ${#targets[@]}; i += jobs)); do fuzz_one "${targets[i]}"; done) &
done
wait
for t in "${targets[@]}"; do cat "target/fuzz-line-$t.txt" | tee -a "$report"; done

((mutants > 0)) || { say "done $(date -u +%FT%TZ)"; ! ls fuzz/artifacts/*/* >/dev/null 2>&1; exit; }

# The release binary over mutated hostile archives.
say "mutation run: $mutants mutants of each hostile archive, release binary"
work=target/fuzz-mutants
rm -rf "$work" && mkdir -p "$work"
cat > "$work/leakwatch.toml" <<EOF
[organization]
name = "Fuzz"
domains = ["agence-exemple.fr"]
[state]
dir = "$PWD/$work/state"
[notify]
transport = "file"
from = "Fuzz <fuzz@agence-exemple.fr>"
admins = ["secops@agence-exemple.fr"]
EOF
bin=target/release/leakwatch
$bin --config "$work/leakwatch.toml" accounts import "$seeds/stealer/accounts.csv" >/dev/null 2>&1
python3 - "$seeds" "$work/in" "$mutants" <<'EOF'
import os, random, sys
seeds, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(16)
exts = (".zip", ".7z", ".tar", ".gz", ".tgz", ".rar", ".xlsx", ".ods")
files = [os.path.join(d, f) for d, _, fs in os.walk(seeds) for f in fs if f.endswith(exts)]
for i, path in enumerate(sorted(files)):
    data = open(path, "rb").read()
    batch = os.path.join(out, "%03d" % i)
    os.makedirs(batch)
    for k in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            if op < 0.5 and b:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif op < 0.65 and b:
                del b[rng.randrange(len(b)):]
            elif op < 0.85 and b:
                i0 = rng.randrange(len(b)); j0 = rng.randrange(len(b))
                b[i0:i0] = b[j0:j0 + rng.randint(1, 4096)]
            elif b:
                i0 = rng.randrange(len(b))
                b[i0:i0 + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
        open(os.path.join(batch, "m%04d%s" % (k, os.path.splitext(path)[1])), "wb").write(bytes(b))
print(len(files))
EOF
bad=0; batches=0; inputs=0
for batch in "$work"/in/*; do
  batches=$((batches + 1)); inputs=$((inputs + $(ls "$batch" | wc -l)))
  set +e
  # 400 RAR mutants take about 140 s (unar runs per file): 900 s tells a hang from that.
  timeout 900 $bin --config "$work/leakwatch.toml" ingest --no-progress "$batch" >/dev/null 2>"$work/last.err"
  rc=$?
  set -e
  if ((rc > 2)); then
    bad=$((bad + 1)); say "  $batch: exit $rc (signal or timeout)"; tail -3 "$work/last.err" | tee -a "$report"
  fi
done
say "  $inputs mutated inputs in $batches batches: $bad batch(es) ended by a signal or a timeout"
say "done $(date -u +%FT%TZ)"
((bad == 0)) && ! ls fuzz/artifacts/*/* >/dev/null 2>&1
