#!/usr/bin/env bash
# `make bench`: coze-chat, coze-file and coze-workflow (release) against curl and the official Python SDK (cozepy)
# on loopback against coze-fake. See docs/benchmarks.md.
#
# Builds the release binaries (or uses $BENCH_BIN, a directory holding them), makes a
# virtualenv with cozepy (reuses target/referee-venv when it has cozepy, else creates
# target/bench-venv), checks for curl, then runs scripts/bench/bench.py, which starts
# the fake, runs every case and prints a Markdown report, also written to
# target/bench/report.md. With --update-docs the report replaces the generated part of
# docs/benchmarks.md (between the bench:begin / bench:end markers).
#
# Other options go to bench.py: --reps N (short cases, default 9), --long-reps N
# (default 5), --deltas N (default 200000), --batch N (default 500), --scale-prompts N
# (default 1000: the --jobs 1/4/16 scaling case; 0 skips it), --upload-mb N (default
# 400: the MiB of the upload case's file; 0 skips it), --messages N (default 100000: the
# Message events of the workflow case's run; 0 skips it), --tool-prompts N (default 100:
# the local tools case; 0 skips it), --replay-chunk N (default 16384: the HTTP chunk size
# of a replayed stream; 0: one chunk per event), --cases LIST (some cases only, by name or number:
# startup,long,ttfb,batch,memory,binaries,scaling,upload,workflow,tools, or 1-10).
# The long streams are recorded from the fake once and replayed from memory by
# scripts/bench/replay.py, so those cases measure the client (docs/benchmarks.md).
# Nothing here asserts a timing; `make test` never runs it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}

update_docs=false
args=()
for a in "$@"; do
    case $a in
        --update-docs) update_docs=true ;;
        *) args+=("$a") ;;
    esac
done

command -v curl >/dev/null || { echo "bench: curl is needed (apt-get install curl)" >&2; exit 1; }

if [[ -n ${BENCH_BIN:-} ]]; then
    bin=$BENCH_BIN
else
    cargo build -q --workspace --release
    bin=$target/release
fi

venv=$target/referee-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import cozepy' 2>/dev/null; then
    venv=$target/bench-venv
    if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import cozepy' 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check cozepy==0.20.0
    fi
fi

mkdir -p "$target/bench"
report=$target/bench/report.md
cmd="make bench"
[[ $# -gt 0 ]] && cmd="bash scripts/bench.sh $*"
python3 scripts/bench/bench.py --bin "$bin" --python "$venv/bin/python" --out "$report" \
    --command "$cmd" ${args[@]+"${args[@]}"}

if $update_docs; then
    doc=docs/benchmarks.md
    python3 - "$doc" "$report" <<'EOF'
import sys
doc, report = sys.argv[1], sys.argv[2]
text = open(doc).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:i] + "\n" + open(report).read() + text[j:])
EOF
    echo "bench: updated $doc" >&2
fi
