#!/usr/bin/env bash
# A cron job: every question in QUESTIONS (one per line) to the bot, one `answer`
# record per question appended to OUT_DIR/answers-YYYY-MM-DD.jsonl, a log in
# OUT_DIR/cron-batch.log, and never two runs at once. Run again the same day (after
# a failure, a kill, a reboot), it asks only what the day's file does not have
# `completed` yet (coze-chat --resume): nothing is answered twice.
#
# Usage: cron-batch.sh QUESTIONS [OUT_DIR]     (OUT_DIR default: .)
#   e.g. in crontab (cron runs jobs with PATH=/usr/bin:/bin; the script also looks
#   in ~/.local/bin and /usr/local/bin, where `make install` puts the tools, else
#   set PATH in the crontab as below):
#     PATH=/opt/coze/bin:/usr/bin:/bin
#     0 6 * * *  COZE_BOT_ID=7... /path/to/cron-batch.sh ~/q.txt ~/answers
# Environment: COZE_BOT_ID (required); CRON_BATCH_LOCK, the lock file
#   [default: OUT_DIR/.cron-batch.lock].
# Exit status: coze-chat's (0 every question answered; see coze-chat --help for the
#   others; failed questions are in the file with "status":"failed" and are asked
#   again by the next run); 2 usage, or coze-chat not found; 75 (EX_TEMPFAIL)
#   another run still holds the lock, nothing was done.
set -euo pipefail

# Cron's PATH is /usr/bin:/bin: add the places `make install` puts the tools, after
# whatever PATH says (so a PATH set in the crontab wins).
PATH=$PATH:$HOME/.local/bin:/usr/local/bin
if ! command -v coze-chat >/dev/null; then
    echo "cron-batch: coze-chat not found on PATH ($PATH): set PATH in the crontab" >&2
    exit 2
fi

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
: >>"$out"
# --resume skips what the file already has completed; its summary record (prompts,
# completed, failed, skipped, …) is the last line coze-chat writes to the log.
coze-chat --bot "$COZE_BOT_ID" -o answers --resume "$out" --append \
    <"$questions" 2>>"$log" || status=$?
summary=$(tail -n 1 "$log")
# The first match is the top-level count (by_status comes after it).
count() { printf '%s' "$summary" | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
if [[ $summary == '{"type":"summary"'* ]]; then
    result="$(count completed) answered, $(count failed) failed, $(count skipped) already done"
else
    result="no summary (see above)"
fi
say "done: exit $status; $result; $out has $(wc -l <"$out") records"
exit "$status"
