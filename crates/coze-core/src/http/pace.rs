//! Pacing requests across every thread of a process: a token bucket for `--rate`, and
//! a pool-wide slow-down when the server says "too many requests".
//!
//! One `Pacer` is shared by all jobs (it lives in `Http`). The first 429 (or 4013/4020)
//! opens a *slow-down*: every thread waits out the same pause (the answer's
//! `Retry-After`, else the retry backoff), the rate is cut to half of what was being
//! sent, and it then climbs back by a tenth of its ceiling per second (AIMD). The
//! slow-down lasts until the rate is back where it was cut. Within it, further 429s do
//! not pause the pool or cut again, as TCP halves once per round trip: they answer
//! requests sent before the slow-down took effect, or are the sporadic refusals of a
//! server near its limit, and each waits out its own `Retry-After` (`Http` sleeps it).
//! Stacking them was the cost of the old design: 2 % of 429s with `Retry-After: 1`
//! paused a 16-job pool at every one of them and halved its rate each second, so a run
//! took 6.5 times as long. One thing does cut again within a slow-down: when more than
//! a tenth of the requests sent since its pause (20 at least) were refused, the server's
//! limit is below the climbing rate, and the next 429 opens a new slow-down from there.
//!
//! The decisions take the time as an argument (`acquire_at`, `throttled_at`), so the
//! unit tests below run on a made-up clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    /// Requests per second we aim for; None = unlimited unless throttled.
    target: Option<f64>,
    /// The rate in force now (≤ target); lowered on rate limits.
    current: Option<f64>,
    /// What the rate climbs back to after a throttle: the target, or without one the
    /// rate we were actually sending at before it.
    ceiling: f64,
    tokens: f64,
    last: Instant,
    paused_until: Option<Instant>,
    /// Requests counted since `window_start`, to know the actual rate.
    window_start: Instant,
    window_count: u32,
    observed: f64,
    /// The slow-down in force, if any.
    slowdown: Option<Slowdown>,
    /// Pool-wide pauses so far (for the summary).
    pauses: u64,
}

/// One slow-down: from the first 429 until the rate is back at `back_at`.
#[derive(Debug)]
struct Slowdown {
    back_at: f64,
    /// Requests sent since its pause, and 429s answered since then.
    sent: u32,
    refused: u32,
}

impl Slowdown {
    /// The server refuses more than it would near its limit: cut again.
    fn over_the_limit(&self) -> bool {
        self.sent >= 20 && self.refused * 10 > self.sent
    }
}

/// The shared pacer.
#[derive(Debug)]
pub struct Pacer {
    bucket: Mutex<Bucket>,
}

/// The lowest rate AIMD may fall to, so a long outage does not stall the run forever.
const FLOOR: f64 = 0.2;
/// The climb back after a cut: this share of the ceiling per second.
const CLIMB: f64 = 0.1;

impl Pacer {
    /// `rate`: requests per second across all threads (None: no limit).
    pub fn new(rate: Option<f64>) -> Pacer {
        Pacer::new_at(rate, Instant::now())
    }

    fn new_at(rate: Option<f64>, now: Instant) -> Pacer {
        let rate = rate.filter(|r| *r > 0.0);
        Pacer {
            bucket: Mutex::new(Bucket {
                target: rate,
                current: rate,
                ceiling: rate.unwrap_or(0.0),
                // Start with one token: no burst at start-up beyond one request.
                tokens: 1.0,
                last: now,
                paused_until: None,
                window_start: now,
                window_count: 0,
                observed: 0.0,
                slowdown: None,
                pauses: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until this thread may send one request.
    pub fn acquire(&self) {
        while let Some(wait) = self.acquire_at(Instant::now()) {
            std::thread::sleep(wait);
        }
    }

    /// Takes a request's turn at `now` (None), or says how long to wait for it.
    fn acquire_at(&self, now: Instant) -> Option<Duration> {
        let mut b = self.lock();
        if let Some(until) = b.paused_until.filter(|u| *u > now) {
            return Some(until - now);
        }
        b.paused_until = None;
        let window = now.saturating_duration_since(b.window_start).as_secs_f64();
        if window >= 1.0 {
            b.observed = f64::from(b.window_count) / window;
            b.window_start = now;
            b.window_count = 0;
        }
        let Some(rate) = b.current else {
            b.sent(now);
            return None;
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = b.last.max(now);
        // Recover toward the ceiling: +10 % of it per second (AIMD).
        let mut rate = (rate + b.ceiling * CLIMB * elapsed).min(b.ceiling.max(FLOOR));
        if b.slowdown.as_ref().is_some_and(|s| rate >= s.back_at) {
            b.slowdown = None;
        }
        if b.target.is_none() && rate >= b.ceiling {
            // Fully recovered: unlimited again, measured afresh from here.
            b.current = None;
            b.slowdown = None;
            b.observed = b.ceiling;
            b.window_start = now;
            b.window_count = 0;
            b.sent(now);
            return None;
        }
        if let Some(target) = b.target {
            rate = rate.min(target);
        }
        b.current = Some(rate);
        // A bucket of one: strict pacing, no bursts after a quiet spell.
        b.tokens = (b.tokens + elapsed * rate).min(1.0);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.sent(now);
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - b.tokens) / rate))
    }

    /// The server refused a request for rate, asking for `pause`: the first refusal
    /// opens a slow-down (everyone pauses, the rate is halved); later ones within it
    /// change nothing for the pool (the caller still waits its own `pause`).
    pub fn throttled(&self, pause: Duration) {
        self.throttled_at(Instant::now(), pause);
    }

    fn throttled_at(&self, now: Instant, pause: Duration) {
        let mut b = self.lock();
        if b.paused_until.is_some_and(|u| u > now) {
            return;
        }
        if let Some(s) = b.slowdown.as_mut() {
            s.refused += 1;
            if !s.over_the_limit() {
                return;
            }
        }
        let until = now + pause;
        b.paused_until = Some(until);
        b.pauses += 1;
        let window = now
            .saturating_duration_since(b.window_start)
            .as_secs_f64()
            .max(0.05);
        let observed = b.observed.max(f64::from(b.window_count) / window);
        let base = b
            .current
            .unwrap_or(if observed > 0.0 { observed } else { 10.0 });
        if b.target.is_none() && b.current.is_none() {
            b.ceiling = base;
        }
        b.current = Some((base / 2.0).max(FLOOR));
        b.tokens = 0.0;
        // The climb starts when the pause ends.
        b.last = until;
        b.slowdown = Some(Slowdown {
            back_at: base,
            sent: 0,
            refused: 0,
        });
    }

    /// The rate in force (for the summary and tests).
    pub fn current_rate(&self) -> Option<f64> {
        self.lock().current
    }

    /// How many times the whole pool paused for the server's rate limit.
    pub fn pauses(&self) -> u64 {
        self.lock().pauses
    }
}

impl Bucket {
    /// One request goes out `now`.
    fn sent(&mut self, now: Instant) {
        // The rate is measured from the first request, not from start-up: reading the
        // token or stdin is not sending slowly.
        if self.window_count == 0 && self.observed == 0.0 {
            self.window_start = now;
        }
        self.window_count += 1;
        if let Some(s) = self.slowdown.as_mut() {
            s.sent += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_the_rate() {
        let p = Pacer::new(Some(50.0));
        let start = Instant::now();
        for _ in 0..26 {
            p.acquire();
        }
        // One token at start, then 25 more at 50/s: at least 0.5 s.
        assert!(
            start.elapsed() >= Duration::from_millis(480),
            "{:?}",
            start.elapsed()
        );
    }

    /// Sends requests at `rate` per second from `from` for `secs`, on the made-up clock;
    /// every request must be let through when it asks. Returns the time after the last.
    fn send(p: &Pacer, from: Instant, rate: f64, secs: f64) -> Instant {
        let step = Duration::from_secs_f64(1.0 / rate);
        let mut t = from;
        while t < from + Duration::from_secs_f64(secs) {
            assert_eq!(p.acquire_at(t), None, "held back at {:?}", t - from);
            t += step;
        }
        t
    }

    fn rate(p: &Pacer) -> f64 {
        p.current_rate().expect("slowed down")
    }

    /// 429s within a slow-down neither pause the pool again nor cut the rate again;
    /// the pause is the Retry-After; the rate climbs back steadily, and once it is
    /// back, the next 429 opens a new slow-down.
    #[test]
    fn one_pause_and_one_cut_per_slow_down_then_a_steady_climb() {
        let t0 = Instant::now();
        let s = Duration::from_secs_f64;
        let p = Pacer::new_at(None, t0);
        // Unlimited at 100 requests per second for 2 s.
        let t = send(&p, t0, 100.0, 2.0);
        p.throttled_at(t, s(1.0));
        assert_eq!(p.pauses(), 1);
        let half = rate(&p);
        assert!((45.0..=55.0).contains(&half), "{half}");
        // Everyone waits out the Retry-After.
        let wait = p.acquire_at(t + s(0.25)).expect("paused");
        assert!((wait.as_secs_f64() - 0.75).abs() < 1e-6, "{wait:?}");
        // The 15 other jobs' 429s, during the pause and after it: no new pause, no cut.
        for i in 0..15 {
            p.throttled_at(t + s(0.05 * f64::from(i)), s(1.0));
        }
        // When it ends, the pacing of the halved rate, no more.
        let wait = p.acquire_at(t + s(1.0)).unwrap_or_default();
        assert!(wait.as_secs_f64() <= 1.0 / half + 1e-6, "{wait:?}");
        p.throttled_at(t + s(1.2), s(1.0));
        p.throttled_at(t + s(2.5), s(1.0));
        assert_eq!(p.pauses(), 1, "one pause for the whole slow-down");
        assert_eq!(p.acquire_at(t + s(1.5)), None, "no second pause");
        // The climb: +10 % of the rate before the cut per second, from the pause's end.
        let _ = p.acquire_at(t + s(3.0));
        let climbed = rate(&p);
        assert!(
            (climbed - (half + 0.2 * 2.0 * half)).abs() < 2.0,
            "{half} → {climbed} after 2 s"
        );
        // Back where it was cut after 5 s of climbing: unlimited again.
        let t = send(&p, t + s(6.5), 100.0, 1.0);
        assert_eq!(p.current_rate(), None);
        p.throttled_at(t, s(1.0));
        assert_eq!(p.pauses(), 2, "a new slow-down");
    }

    /// A server whose limit is below the climbing rate refuses much more than a few
    /// requests: that cuts again within the slow-down.
    #[test]
    fn many_refusals_within_a_slow_down_cut_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs_f64;
        let p = Pacer::new_at(Some(40.0), t0);
        let t = send(&p, t0, 40.0, 1.0);
        p.throttled_at(t, s(1.0));
        assert!((rate(&p) - 20.0).abs() < 1e-6);
        // 20 requests after the pause, 2 refused (10 %): the sporadic kind.
        let mut t = t + s(1.0);
        for _ in 0..20 {
            while let Some(w) = p.acquire_at(t) {
                t += w;
            }
        }
        p.throttled_at(t, s(1.0));
        p.throttled_at(t, s(1.0));
        assert_eq!(p.pauses(), 1);
        // A third: more than a tenth refused.
        p.throttled_at(t, s(1.0));
        assert_eq!(p.pauses(), 2);
        assert!(rate(&p) < 15.0, "{}", rate(&p));
    }

    #[test]
    fn unlimited_is_free_and_a_throttle_pauses_everyone() {
        let p = Pacer::new(None);
        let start = Instant::now();
        for _ in 0..1000 {
            p.acquire();
        }
        assert!(start.elapsed() < Duration::from_millis(200));
        p.throttled(Duration::from_millis(300));
        assert!(p.current_rate().is_some_and(|r| r > 0.0));
        let t = Instant::now();
        p.acquire();
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
    }
}
