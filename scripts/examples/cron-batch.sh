#!/usr/bin/env bash
# A cron job: every question in QUESTIONS (one per line) to the bot, one `answer`
# record per question appended to OUT_DIR/answers-YYYY-MM-DD.jsonl, a log in
# OUT_DIR/cron-batch.log, and never two runs at once.
#
# Usage: cron-batch.sh QUESTIONS [OUT_DIR]     (OUT_DIR default: .)
#   e.g. in crontab:  0 6 * * *  COZE_BOT_ID=7... /path/to/cron-batch.sh ~/q.txt ~/answers
# Environment: COZE_BOT_ID (required); CRON_BATCH_LOCK, the lock file
#   [default: OUT_DIR/.cron-batch.lock].
# Exit status: coze-chat's (0 every question answered; see coze-chat --help for the
#   others; failed questions are in the file with "status":"failed"); 2 usage;
#   75 (EX_TEMPFAIL) another run still holds the lock, nothing was done.
set -euo pipefail

questions=${1:-}
dir=${2:-.}
if [[ -z $questions || ! -r $questions ]]; then
    echo "cron-batch: usage: cron-batch.sh QUESTIONS [OUT_DIR] (QUESTIONS must be readable)" >&2
    exit 2
fi
if [[ -z ${COZE_BOT_ID:-} ]]; then
    echo "cron-batch: set COZE_BOT_ID to the bot to ask" >&2
    exit 2
fi
mkdir -p "$dir"
lock=${CRON_BATCH_LOCK:-$dir/.cron-batch.lock}
log=$dir/cron-batch.log
out=$dir/answers-$(date +%F).jsonl

say() { printf '%s cron-batch[%d]: %s\n' "$(date '+%F %T')" "$$" "$*" >>"$log"; }

# The lock is held for as long as fd 9 is open, so until this script ends, however
# it ends. flock -n: if another run has it, say so and leave everything untouched.
exec 9>>"$lock"
if ! flock -n 9; then
    msg="another run holds $lock (still running since $(stat -c %y "$lock" | cut -d. -f1)?); not starting"
    echo "cron-batch: $msg" >&2
    say "$msg"
    exit 75
fi
touch "$lock"

n=$(grep -c . "$questions" || true)
say "start: $n questions from $questions -> $out"
status=0
coze-chat --bot "$COZE_BOT_ID" -o answers <"$questions" >>"$out" 2>>"$log" || status=$?
failed=$(grep -c '"status":"failed"' "$out" || true)
say "done: exit $status; $out has $(wc -l <"$out") records, $failed failed"
exit "$status"
