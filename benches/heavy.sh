#!/usr/bin/env bash
# A leak of the whole user base (issue 17): every line an account of the directory.
# Prints one table; asserts nothing.
#
#   benches/heavy.sh                  # 1,000,000 accounts (~15 min)
#   ACCOUNTS=100000 benches/heavy.sh  # smaller
#   benches/heavy.sh --smoke          # 2,000 accounts, debug build: CI proves it still runs
#
# Phases, each timed from leakwatch's own log lines:
#   1. first ingest of all.txt: every line a new finding, recorded; a mail composed for
#      each account and the digest; all delivered over SMTP to Postfix's smtp-sink on
#      loopback (extracted from Debian's postfix package, started and stopped here);
#   2. the same file again: every line a finding already known (recorded as seen);
#   3. (not with --smoke) the 1 GiB combo list of benches/compare.sh with 1 % of its
#      lines ours, read a second time, beside the same list with 200 of ours.
# Peak RSS is that of the whole leakwatch process of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=${ACCOUNTS:-1000000}
connections=${CONNECTIONS:-8}
profile=release
smoke=false
if [[ "${1:-}" == "--smoke" ]]; then
  accounts=2000 profile=debug smoke=true
fi
if [[ $profile == release ]]; then cargo build --release --quiet --bins; else cargo build --quiet --bins; fi
bin=$PWD/target/$profile/leakwatch
synth=$PWD/target/$profile/leakwatch-synth
domain=agence-exemple.fr

# Postfix's smtp-sink, from the Debian package, without installing Postfix.
sink_dir=bench-data/postfix
if [[ ! -x $sink_dir/root/usr/sbin/smtp-sink ]]; then
  mkdir -p "$sink_dir"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  # A fresh machine may have no package lists yet.
  (cd "$sink_dir" && { apt-get download postfix >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && apt-get download postfix >/dev/null 2>&1; }; } &&
    dpkg-deb -x postfix_*.deb root) || {
    echo "heavy.sh: cannot get Postfix's smtp-sink (apt-get download postfix)" >&2
    exit 1
  }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user_opt=()
[[ $(id -u) == 0 ]] && user_opt=(-u nobody)
LD_LIBRARY_PATH=$sink_dir/root/usr/lib/postfix "$sink_dir/root/usr/sbin/smtp-sink" "${user_opt[@]}" "127.0.0.1:$port" 256 >/dev/null 2>&1 &
sink=$!
data=bench-data/heavy-$accounts
out=$(mktemp)
trap 'kill $sink 2>/dev/null || true; rm -f "$out" "$out.t"' EXIT

if [[ ! -f $data/all.txt ]]; then
  echo "generating $data ..." >&2
  "$synth" heavy "$data" --accounts "$accounts" >/dev/null
fi
cat >"$data/leakwatch.toml" <<TOML
[organization]
name = "Bench"
domains = ["$domain"]
login_hosts = ["sso.$domain"]
[state]
dir = "$data/state"
[notify]
transport = "smtp"
from = "bench@$domain"
admins = ["secops@$domain"]
[notify.smtp]
host = "127.0.0.1"
port = $port
tls = "none"
max_connections = $connections
TOML
rm -rf "$data/state"
RUST_LOG=leakwatch=warn "$bin" --config "$data/leakwatch.toml" accounts import "$data/accounts.csv" >/dev/null
lines=$(wc -l <"$data/all.txt")

# Runs an ingest with the phases' log lines; prints "seconds max_rss_kib".
measure() {
  RUST_LOG=leakwatch=info /usr/bin/time -o "$out.t" -f "%e %M" "$bin" --config "$data/leakwatch.toml" ingest --no-progress "$@" >"$out" 2>&1 || true
  tail -1 "$out.t"
}
# The `secs` of a phase's log line.
# The `secs` of a phase's last log line (an ingest delivers the old queue first).
phase() { grep "$1" "$out" | tail -1 | sed -E 's/.*secs=([0-9.]+).*/\1/'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "-" }'; }

echo "# leakwatch heavy-match benchmark: $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $profile build"
echo "directory: $accounts accounts; dump: $lines lines, every one an account; SMTP: smtp-sink on loopback, max_connections = $connections"
echo
printf '| %-46s | %10s | %12s | %12s |\n' phase seconds per-second "peak RSS MiB"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------" "------------" "--------------" "--------------"
read -r total rss < <(measure "$data/all.txt")
grep -q "ingest:" "$out" || { cat "$out" >&2; exit 1; }
new=$(grep -m1 '^ingest:' "$out" | sed -E 's/.* ([0-9]+) new findings.*/\1/')
rec=$(phase "findings recorded"); comp=$(phase "mail composed"); deliv=$(phase "queue delivered")
mails=$(grep "mail composed" "$out" | tail -1 | sed -E 's/.*user=([0-9]+).*/\1/')
sent=$(grep "queue delivered" "$out" | tail -1 | sed -E 's/.*sent=([0-9]+).*/\1/')
printf '| %-46s | %10s | %12s | %12s |\n' "first ingest: read and record ($new new)" "$rec" "$(rate "$lines" "$rec")" ""
printf '| %-46s | %10s | %12s | %12s |\n' "compose ($mails user mails + digest)" "$comp" "$(rate "$mails" "$comp")" ""
printf '| %-46s | %10s | %12s | %12s |\n' "deliver to smtp-sink ($sent mails)" "$deliv" "$(rate "$sent" "$deliv")" ""
printf '| %-46s | %10s | %12s | %12s |\n' "first ingest, whole run" "$total" "" "$((rss / 1024))"
read -r total rss < <(measure "$data/all.txt")
rec=$(phase "findings recorded")
printf '| %-46s | %10s | %12s | %12s |\n' "re-ingest (every line a known finding)" "$rec" "$(rate "$lines" "$rec")" "$((rss / 1024))"
digest=$(ls -1 "$data/state/reports" 2>/dev/null | head -1 || true)
echo
if [[ -n $digest ]]; then
  echo "forced-reset list too large to mail, written to $data/state/reports/$digest"
fi

if ! $smoke; then
  # The combo list of benches/compare.sh, with 1 % of its lines ours (its generator
  # plants N accounts, one line each), read once to record, then read again, timed. The
  # two lists' timed reads alternate, best of 3 each: this VM's speed drifts by the hour,
  # and one list timed after the other would carry the drift into the ratio.
  plants=(200 222000)
  for plant in "${plants[@]}"; do
    list=bench-data/1024mb-$plant-1000000
    if [[ ! -f $list/combo.txt ]]; then
      "$synth" bench "$list" --accounts 1000000 --size-mb 1024 --plant "$plant" >/dev/null
    fi
    cat >"$list/heavy.toml" <<TOML
[organization]
name = "Bench"
domains = ["$domain"]
login_hosts = ["sso.$domain"]
[state]
dir = "$list/heavy-state"
[notify]
transport = "file"
users = false
from = "bench@$domain"
admins = ["secops@$domain"]
TOML
    rm -rf "$list/heavy-state"
    RUST_LOG=leakwatch=warn "$bin" --config "$list/heavy.toml" accounts import "$list/accounts.csv" >/dev/null
    RUST_LOG=leakwatch=warn "$bin" --config "$list/heavy.toml" ingest --no-progress "$list/combo.txt" >/dev/null 2>&1 || true
  done
  declare -A best rss matches
  for _ in 1 2 3; do
    for plant in "${plants[@]}"; do
      list=bench-data/1024mb-$plant-1000000
      /usr/bin/time -o "$out.t" -f "%e %M" "$bin" --config "$list/heavy.toml" ingest --no-progress "$list/combo.txt" >"$out" 2>&1 || true
      read -r s r <"$out.t"
      if [[ -z ${best[$plant]:-} ]] || awk "BEGIN{exit !($s < ${best[$plant]})}"; then
        best[$plant]=$s rss[$plant]=$r
      fi
      matches[$plant]=$(grep -m1 '^ingest:' "$out" | sed -E 's/.* ([0-9]+) matches.*/\1/')
    done
  done
  for plant in "${plants[@]}"; do
    printf '| %-46s | %10s | %12s | %12s |\n' "1 GiB combo again, ${matches[$plant]} lines ours" "${best[$plant]}" "" "$((rss[$plant] / 1024))"
  done
  echo
  awk -v a="${best[222000]}" -v b="${best[200]}" 'BEGIN { printf "1 %% ours against 200 lines ours: %.2fx the time\n", a / b }'
fi
