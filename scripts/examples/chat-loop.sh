#!/usr/bin/env bash
# An interactive chat with a bot on one conversation: the bot remembers what was said.
# Creates the conversation with coze-conv, then sends each line you type (readline
# editing and history) with coze-chat, printing the answer as it streams.
#
# Usage: chat-loop.sh [BOT_ID]       (default: $COZE_BOT_ID)
#        echo "hi" | chat-loop.sh     (lines from a pipe work too)
# Ctrl-D ends it. Needs coze-conv, coze-chat and jq on PATH, and a login
# (coze-auth | coze-token --save) or COZE_API_TOKEN.
set -euo pipefail

bot=${1:-${COZE_BOT_ID:-}}
if [[ -z $bot ]]; then
    echo "chat-loop: no bot: pass BOT_ID or set COZE_BOT_ID" >&2
    exit 2
fi

conv=$(coze-conv create --bot "$bot" | jq -r .conversation_id)
echo "chat-loop: conversation $conv with bot $bot (Ctrl-D ends)" >&2

status=0
while IFS= read -r -e -p "you> " line; do
    [[ -n ${line//[[:space:]]/} ]] || continue
    [[ -t 0 ]] && { history -s -- "$line" 2>/dev/null || true; }
    # The line is one argument after `--` (so a leading "-" is text); stdin is not
    # coze-chat's, it is the rest of ours.
    coze-chat --bot "$bot" --conversation "$conv" -o text -- "$line" </dev/null || status=$?
    echo
done
[[ -t 0 ]] && echo >&2
exit "$status"
