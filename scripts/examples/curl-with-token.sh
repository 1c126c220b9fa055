#!/usr/bin/env bash
# Any HTTP client can use the token coze-token keeps fresh: here curl asks the API
# who you are (GET /v1/users/me). The header reaches curl on its stdin (curl -H @-),
# so the token is never in a command line that ps could show.
#
# Usage: curl-with-token.sh        (API base: $COZE_API_BASE, else https://api.coze.cn)
# Prints the API's JSON answer. Exit status: coze-token's when there is no usable
# token (4: log in first), else curl's (22 when the API said no).
set -euo pipefail

base=${COZE_API_BASE:-https://api.coze.cn}
# First the header (coze-token's exit status, e.g. 4 "log in first", ends the script
# here), then curl reading it from stdin.
header=$(coze-token print --header)
curl -sS --fail-with-body -H @- "${base%/}/v1/users/me" <<<"$header"
echo
