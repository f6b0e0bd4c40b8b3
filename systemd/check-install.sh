#!/usr/bin/env bash
# Runs the install block of systemd/README.md, in its order, under a scratch root: every
# absolute path moved below it, `systemd-sysusers` and `systemd-tmpfiles` given `--root`,
# `cargo install` replaced by a copy of the built binary, `systemctl` left out (no systemd
# runs here), and `runuser -u leakwatch` by `setpriv` with the uid that sysusers gave the
# user in the scratch root (it is not a user of this machine). Then checks what the block
# left: the user, the state directory (0700, the user's) with the imported directory in
# it, and that `check` passes on the installed configuration.
#
# Needs root (the block chowns). Usage: systemd/check-install.sh [path/to/leakwatch]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/debug/leakwatch}")
[[ -x $bin ]] || { echo "no binary at $bin: build first" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "$0 needs root" >&2; exit 2; }

R=$(mktemp -d /tmp/leakwatch-install.XXXXXX)
trap 'rm -rf "$R"' EXIT
chmod 755 "$R"
mkdir -p "$R"/etc/{systemd/system,sysusers.d,tmpfiles.d} "$R"/usr/local/bin "$R"/var/lib "$R"/srv

# The shipped config and feed with their absolute paths moved under the scratch root.
work=$R/.work
mkdir -p "$work"
for f in leakwatch.toml feeds.d/drop.toml; do
  mkdir -p "$work/$(dirname "$f")"
  sed -E "s#\"/(etc|srv|var)/#\"$R/\\1/#g" "systemd/$f" > "$work/$f"
done

# The commands the block uses that must act inside the scratch root.
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$R/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$R/etc/group"; }
systemd-sysusers() { command systemd-sysusers --root="$R" "$@"; }
systemd-tmpfiles() { command systemd-tmpfiles --root="$R" "$@"; }
systemctl() { echo "  (skipped here: systemctl $*)"; }
install() {
  local args=()
  while (($#)); do
    if [[ $1 == -g ]]; then args+=(-g "$(gid_of "$2")"); shift 2; else args+=("$1"); shift; fi
  done
  command install "${args[@]}"
}
runuser() {
  [[ $1 == -u ]] || { echo "runuser: expected -u USER" >&2; return 2; }
  local user=$2; shift 3 # -u USER --
  [[ $1 == leakwatch ]] && { shift; set -- "$R/usr/local/bin/leakwatch" "$@"; }
  setpriv --reuid="$(uid_of "$user")" --regid="$(gid_of "$user")" --clear-groups -- "$@"
}

block=$(awk '/^```sh$/ { f = 1; next } /^```$/ { f = 0 } f' systemd/README.md)
[[ -n $block ]] || { echo "no install block in systemd/README.md" >&2; exit 1; }
script=$(
  printf '%s\n' "$block" |
    sed -E \
      -e "s#^cargo install .*#command install -m 0755 '$bin' '$R/usr/local/bin/leakwatch'#" \
      -e "s#systemd/leakwatch\\.toml#$work/leakwatch.toml#g" \
      -e "s#systemd/feeds\\.d/drop\\.toml#$work/feeds.d/drop.toml#g" \
      -e "s#/path/to/directory\\.csv#$PWD/feeds/demo/accounts.csv#g" \
      -e "s#(^|[ =>])/(etc|srv|var|usr)/#\\1$R/\\2/#g"
)
echo "--- the block, as run:"
printf '%s\n' "$script"
echo "---"
eval "$script"

fail() { echo "check-install: $*" >&2; exit 1; }
uid=$(uid_of leakwatch)
[[ -n $uid ]] || fail "no leakwatch user in $R/etc/passwd"
state=$R/var/lib/leakwatch
[[ $(stat -c '%u %a' "$state") == "$uid 700" ]] || fail "state dir is $(stat -c '%u %a' "$state")"
[[ -s $state/leakwatch.db ]] || fail "no database in $state: $(ls -la "$state")"
[[ $(stat -c %u "$state/leakwatch.db") == "$uid" ]] || fail "database not the service user's"
[[ -d $R/srv/leakwatch/drop/processed ]] || fail "no drop directory"
runuser -u leakwatch -- leakwatch --config "$R/etc/leakwatch/leakwatch.toml" status >/dev/null ||
  fail "status as the service user failed"
echo "check-install: the documented order works (user $uid, state $state)"
