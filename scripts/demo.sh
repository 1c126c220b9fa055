#!/usr/bin/env bash
# `make demo`: the whole pipeline offline against coze-fake, in a temporary config
# directory. Log in (PKCE, a stand-in browser clicks Approve), save the token, create a
# conversation, chat three lines in it as text, then again as answer records for jq;
# run a workflow over two rows, and answer the question another one asks.
# Finishes in seconds and leaves nothing running.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/debug
PATH=$bin:$PATH
for b in coze-fake coze-auth coze-token coze-conv coze-chat coze-workflow; do
    [[ -x $bin/$b ]] || { echo "demo: $bin/$b is missing; run make build" >&2; exit 1; }
done

tmp=$(mktemp -d)
fake_pid=
cleanup() {
    exec 3>&- 2>/dev/null || true
    [[ -n $fake_pid ]] && { kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT
export HOME=$tmp XDG_CONFIG_HOME=$tmp/config
unset COZE_API_TOKEN COZE_TOKEN_FILE COZE_BOT_ID

# Each command in bold on a terminal; plain text in a log or a pipe.
if [[ -t 2 ]]; then
    step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; }
else
    step() { printf '\n$ %s\n' "$*" >&2; }
fi

mkfifo "$tmp/fake-stdin"
coze-fake <"$tmp/fake-stdin" >"$tmp/fake.out" &
fake_pid=$!
exec 3>"$tmp/fake-stdin" # the fake stops when this closes
for _ in $(seq 100); do [[ -s $tmp/fake.out ]] && break; sleep 0.05; done
export COZE_API_BASE=$(jq -r .base_url "$tmp/fake.out")
echo "demo: coze-fake is serving the Coze API at $COZE_API_BASE" >&2

# The redirect URI must match the app's registration; the fake accepts any, so take a
# free port rather than 8080, which may be busy on this machine.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export BROWSER=$root/scripts/demo-browser.sh

step "coze-auth --client-id demo.app.coze --redirect-uri http://127.0.0.1:$port/callback | coze-token --save"
coze-auth --client-id demo.app.coze --redirect-uri "http://127.0.0.1:$port/callback" | coze-token --save

step "coze-token status"
coze-token status | jq -c '{usable, expires_in, base_url}'

step 'CONV=$(coze-conv create --bot demo-bot --name demo | jq -r .conversation_id)'
CONV=$(coze-conv create --bot demo-bot --name demo | jq -r .conversation_id)
echo "CONV=$CONV" >&2

step "printf '你好\\n今天天气怎么样？\\n谢谢！\\n' | coze-chat --bot demo-bot --conversation \$CONV -o text"
printf '你好\n今天天气怎么样？\n谢谢！\n' | coze-chat --bot demo-bot --conversation "$CONV" -o text

step "printf 'one\\ntwo\\nthree\\n' | coze-chat --bot demo-bot -o answers | jq -c '{prompt, content, status}'"
printf 'one\ntwo\nthree\n' | coze-chat --bot demo-bot -o answers | jq -c '{prompt, content, status}'

step "coze-conv messages \$CONV --order asc | jq -r 'select(.role==\"user\") | .content'"
coze-conv messages "$CONV" --order asc | jq -r 'select(.role=="user") | .content'

step "printf '{\"city\":\"北京\"}\\n{\"city\":\"上海\"}\\n' | coze-workflow run --workflow demo-flow -o results | jq -c '{status, output}'"
printf '{"city":"北京"}\n{"city":"上海"}\n' | coze-workflow run --workflow demo-flow -o results | jq -c '{status, output}'

# The fake's workflow demo-ask stops at a question node, as a real one with a question
# node does; in a pipeline the question is an interrupt record and the exit status 7.
curl -fsS -o /dev/null "$COZE_API_BASE/_fake/workflow" \
    -d '{"workflow_id":"demo-ask","question":"Which colour?","options":["Red","Blue"]}'
step "coze-workflow run --workflow demo-ask --param order=42 -o results > \$tmp/asked.jsonl  # exits 7"
status=0
coze-workflow run --workflow demo-ask --param order=42 -o results >"$tmp/asked.jsonl" || status=$?
[[ $status -eq 7 ]] || { echo "demo: expected exit 7 (waiting for an answer), got $status" >&2; exit 1; }
jq -c 'select(.type=="interrupt") | {question, options}' "$tmp/asked.jsonl"

step "coze-workflow resume --answer Blue -o results < \$tmp/asked.jsonl | jq -c '{status, output}'"
coze-workflow resume --answer Blue -o results <"$tmp/asked.jsonl" | jq -c '{status, output}'

echo >&2
echo "demo: done; the fake stops and $tmp is removed" >&2
