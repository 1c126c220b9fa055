#!/usr/bin/env bash
# $BROWSER for the real-browser tests (tests/browser.rs): starts headless Chromium on
# the URL coze-auth gives it ($1) and returns at once, as a desktop browser launcher
# does. Chromium runs in a session of its own with its output in a log file, so it
# holds none of coze-auth's pipes open; tests/browser/cdp.py then drives it through
# the DevTools protocol and closes it.
#
# Environment:
#   COZE_BROWSER_DIR  a fresh directory for this browser: profile/ (the user data dir,
#                     with profile/DevToolsActivePort naming the debugging port),
#                     chromium.pid (kill -- -PID ends it and its children), chromium.log
#   CHROMIUM          the Chromium binary [default: chromium]
set -euo pipefail

dir=${COZE_BROWSER_DIR:?chromium.sh: set COZE_BROWSER_DIR to a fresh directory}
chromium=${CHROMIUM:-chromium}
url=${1:?chromium.sh: no URL}
mkdir -p "$dir"

# --disable-background-networking and friends: without them Chromium keeps trying to
# reach Google's services, which fail here (no internet) and flood the log.
# --remote-debugging-port=0: Chromium picks a free port and writes it to
# profile/DevToolsActivePort.
setsid "$chromium" \
    --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --no-default-browser-check \
    --password-store=basic --use-mock-keychain --window-size=900,700 \
    --user-data-dir="$dir/profile" --remote-debugging-port=0 \
    "$url" </dev/null >"$dir/chromium.log" 2>&1 &
echo $! >"$dir/chromium.pid"
