//! When to ask again: exponential backoff with full jitter for connection errors, 429,
//! 5xx and 4013/4020, honouring `Retry-After`; and 4016 (another chat is running in the
//! conversation) on a request that starts a chat, which is not a failure of the network
//! or the server but a wait for the other chat, which may take minutes: it has its own
//! budget, a time (`busy_wait`, `--busy-wait`) rather than the `--retries` count, with
//! one stderr line saying why the run waits. The agent runs the loop; the decisions
//! and their words are here.

use std::time::Duration;

use crate::support::url;

/// The first wait for a busy conversation, and the longest.
const BUSY_FIRST: Duration = Duration::from_secs(1);
const BUSY_CAP: Duration = Duration::from_secs(8);

/// The wait before asking a busy conversation again: 1 s, 2 s, 4 s, then every 8 s, the
/// last one cut short so that the final attempt falls on the bound; None once `elapsed`
/// (since the first 4016) has reached `bound`. No jitter: the wait is for one other
/// chat to end, not for a crowd of clients to spread out.
pub fn busy_step(bound: Duration, elapsed: Duration, waits: u32) -> Option<Duration> {
    let left = bound.checked_sub(elapsed).filter(|l| !l.is_zero())?;
    let step = BUSY_FIRST
        .saturating_mul(1u32 << waits.min(16))
        .min(BUSY_CAP);
    Some(step.min(left))
}

/// The conversation a chat request addresses (`/v3/chat?conversation_id=…`), for the
/// busy notice.
pub(crate) fn busy_conversation(target: &str) -> String {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    match url::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "conversation_id")
    {
        Some((_, id)) => format!("conversation {id}"),
        None => "the conversation".to_owned(),
    }
}

/// What a chat that gave up on a busy conversation says.
pub(crate) fn busy_gave_up(target: &str, bound: Duration) -> String {
    let conv = busy_conversation(target);
    if bound.is_zero() {
        format!("{conv} is busy with another chat (--busy-wait 0: not waiting)")
    } else {
        format!(
            "{conv} was still busy with another chat after {} (--busy-wait)",
            in_words(bound)
        )
    }
}

/// A duration as a person says it: "2 min", "90 s", "1.5 s".
pub fn in_words(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_nanos() == 0 && d.as_secs() >= 60 && d.as_secs().is_multiple_of(60) {
        format!("{} min", d.as_secs() / 60)
    } else if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s} s")
    }
}

/// Full-jitter exponential backoff: uniform in [0.5, 1.0] × min(cap, base·2^attempt).
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let step = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    step.mul_f64(0.5 + f64::from(byte[0]) / 510.0)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and treated as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_conversation_is_asked_again_until_the_bound() {
        let s = Duration::from_secs;
        let bound = s(120);
        // 1, 2, 4, 8, 8, … seconds.
        let steps: Vec<_> = (0..6).map(|n| busy_step(bound, s(0), n).unwrap()).collect();
        assert_eq!(steps, [s(1), s(2), s(4), s(8), s(8), s(8)]);
        // The last wait ends on the bound; at the bound, no more.
        assert_eq!(busy_step(bound, s(117), 9), Some(s(3)));
        assert_eq!(busy_step(bound, s(120), 9), None);
        assert_eq!(busy_step(bound, s(121), 9), None);
        // --busy-wait 1: one wait of a second, then give up.
        assert_eq!(busy_step(s(1), s(0), 0), Some(s(1)));
        assert_eq!(busy_step(s(1), Duration::from_millis(1003), 1), None);
        assert_eq!(busy_step(s(0), s(0), 0), None, "--busy-wait 0 never waits");
        assert_eq!(in_words(s(120)), "2 min");
        assert_eq!(in_words(s(90)), "90 s");
        assert_eq!(in_words(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(
            busy_gave_up("http://h/v3/chat?conversation_id=73", s(60)),
            "conversation 73 was still busy with another chat after 1 min (--busy-wait)"
        );
        assert_eq!(
            busy_conversation("http://h/v3/chat"),
            "the conversation",
            "a chat in a new conversation names none"
        );
    }

    #[test]
    fn retry_after_and_backoff() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        for attempt in 0..20 {
            let d = backoff(Duration::from_millis(100), Duration::from_secs(2), attempt);
            let step = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} vs {step:?}"
            );
        }
    }
}
