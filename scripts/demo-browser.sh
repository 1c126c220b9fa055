#!/usr/bin/env bash
# A stand-in for a person at a browser, for `make demo`: coze-auth runs it as $BROWSER
# with the authorize URL; it clicks Approve on coze-fake's consent page with curl and
# follows the redirect back to coze-auth's loopback callback.
set -euo pipefail
consent=$(curl -sS -o /dev/null -w '%{redirect_url}' "$1")
key=${consent##*authorize_key=}
back=$(curl -sS -o /dev/null -w '%{redirect_url}' --data-urlencode "authorize_key=$key" \
    --data-urlencode decision=approve "${consent%%\?*}")
curl -sS -o /dev/null "$back"
echo "demo-browser: clicked Approve" >&2
