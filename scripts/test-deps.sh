#!/usr/bin/env bash
# The programs `make test` runs besides cargo: checked on every `make test` (and by
# .ci/run), so it must stay fast and quiet when they are all present.
#
#   all present             prints nothing, exits 0 (command -v, one python3 at most)
#   missing, root + apt-get installs exactly the missing Debian packages; one line says so
#   missing, otherwise      one line on stderr naming them and the command; exits 1
#
# Usage: scripts/test-deps.sh [--for WHO] [NAME...]
#   NAME   check only these entries of the table (default: all); `make referee` asks
#          for python3 and venv only
#   WHO    who needs them, for the message [default: make test]
set -euo pipefail

# name      Debian package   (what needs it)
table=(
    # the Makefile itself; tests/packaging.rs runs `make install`
    "make       make"
    # tests/examples.rs (scripts/examples/curl-with-token.sh); tests/fixtures/browser-*.sh
    "curl       curl"
    # tests/examples.rs (scripts/examples/chat-loop.sh)
    "jq         jq"
    # tests/browser.rs (tests/browser/cdp.py), tests/packaging.rs (scripts/gen-man.py),
    # scripts/referee.sh
    "python3    python3"
    # scripts/referee.sh: `python3 -m venv` for cozepy (venv and ensurepip modules)
    "venv       python3-venv"
    # tests/browser.rs: headless Chromium, driven over the DevTools protocol
    "chromium   chromium"
    # tests/jwt.rs: makes the RSA key pairs
    "openssl    openssl"
    # tests/packaging.rs: renders the man pages
    "man        man-db"
    # tests/packaging.rs: checks the man pages with every warning on
    "groff      groff-base"
    # tests/examples.rs (scripts/examples/cron-batch.sh takes its lock with flock -n)
    "flock      util-linux"
    # tests/browser.rs (tests/browser/chromium.sh starts Chromium in a session of its own)
    "setsid     util-linux"
    # tests/token.rs: script(1) gives coze-token a terminal for its countdown
    "script     bsdutils"
    # tests/packaging.rs: the zsh completions must parse in zsh
    "zsh        zsh"
    # tests/packaging.rs: the fish completions must parse in fish
    "fish       fish"
)

who="make test"
if [[ ${1:-} == --for ]]; then
    who=${2:?test-deps.sh: --for needs a value}
    shift 2
fi
wanted=" $* "

cd "$(dirname "${BASH_SOURCE[0]}")/.." # as scripts/referee.sh, for its target directory

# venv: python3 can make a virtualenv (its venv and ensurepip modules; Debian ships
# ensurepip in python3-venv). Cheapest first: once scripts/referee.sh has made its
# virtualenv it never asks python3 for another; a python3 that resolves to
# PREFIX/bin/python3.N has its standard library in PREFIX/lib/python3.N; only a wrapper
# (pyenv's shim) costs a python3 start-up.
has_venv() {
    [[ -x ${CARGO_TARGET_DIR:-target}/referee-venv/bin/python ]] && return 0
    local py
    py=$(command -v python3) || return 1
    py=$(readlink -f "$py")
    if [[ $py =~ ^(.*)/bin/python(3\.[0-9]+)$ ]]; then
        local lib=${BASH_REMATCH[1]}/lib/python${BASH_REMATCH[2]}
        [[ -f $lib/venv/__init__.py && -f $lib/ensurepip/__init__.py ]] && return 0
    fi
    python3 -I -S -c 'import importlib.util as u
raise SystemExit(not (u.find_spec("venv") and u.find_spec("ensurepip")))' 2>/dev/null
}

missing=()
for row in "${table[@]}"; do
    read -r name package <<<"$row"
    [[ $wanted == "  " || $wanted == *" $name "* ]] || continue
    if [[ $name == venv ]]; then
        has_venv && continue
    elif command -v "$name" >/dev/null 2>&1; then
        continue
    fi
    [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing ${missing[*]} (apt-get, for $who)" >&2
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "test-deps: apt-get failed to install ${missing[*]}" >&2
        exit 1
    fi
    exit 0
fi

echo "$who needs: ${missing[*]} (install: sudo apt-get install ${missing[*]}; not Debian: the same-named packages of your system)" >&2
exit 1
