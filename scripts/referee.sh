#!/usr/bin/env bash
# Referee coze-fake with the official Python SDK (cozepy 0.20.0).
#
# Builds coze-fake (or uses $COZE_FAKE, a path to a built binary, or the existing
# target/debug/coze-fake when run under cargo, i.e. $CARGO is set), makes a virtualenv at
# target/referee-venv on first use, starts the fake with --device-interval 1 (stdin held
# open by a fifo; closed on exit, which stops it), and runs tests/referee/referee.py.
# Exit status is the referee's: 0 when every check passed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}

if [[ -n ${COZE_FAKE:-} ]]; then
    fake=$COZE_FAKE
elif [[ -n ${CARGO:-} && -x $target/debug/coze-fake ]]; then
    fake=$target/debug/coze-fake # run from cargo: it already built the binary
else
    cargo build -q -p coze-fake
    fake=$target/debug/coze-fake
fi

venv=$target/referee-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import cozepy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check cozepy==0.20.0
fi

tmp=$(mktemp -d)
fifo=$tmp/stdin
mkfifo "$fifo"
fake_pid=
cleanup() {
    exec 3>&- 2>/dev/null || true
    if [[ -n $fake_pid ]]; then
        kill "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$fake" --device-interval 1 <"$fifo" >"$tmp/out" 2>"$tmp/err" &
fake_pid=$!
exec 3>"$fifo" # hold the fake's stdin open until we exit

base=
for _ in $(seq 100); do
    if [[ -s $tmp/out ]]; then
        base=$(sed -n 's/.*"base_url":"\([^"]*\)".*/\1/p' "$tmp/out" | head -n1)
        [[ -n $base ]] && break
    fi
    kill -0 "$fake_pid" 2>/dev/null || { cat "$tmp/err" >&2; echo "referee: coze-fake exited" >&2; exit 1; }
    sleep 0.05
done
[[ -n $base ]] || { echo "referee: coze-fake printed no base_url" >&2; exit 1; }

"$venv/bin/python" tests/referee/referee.py "$base"
