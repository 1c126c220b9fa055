//! Pacing requests across every thread of a process: a token bucket for `--rate`, and
//! a pool-wide pause when the server says "too many requests".
//!
//! One `Pacer` is shared by all jobs (it lives in `Http`). When any request is refused
//! with 429/4013/4020, every thread waits out the same pause and the allowed rate is
//! halved; it then climbs back by a tenth of the target per second of success (AIMD),
//! so a pool of 16 jobs backs off together instead of 16 threads hammering alone.

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
    /// When the rate was last halved: 429s answering requests sent before that halve
    /// it only once (as TCP halves once per round trip).
    last_cut: Option<Instant>,
}

/// The shared pacer.
#[derive(Debug)]
pub struct Pacer {
    bucket: Mutex<Bucket>,
}

/// The lowest rate AIMD may fall to, so a long outage does not stall the run forever.
const FLOOR: f64 = 0.2;

impl Pacer {
    /// `rate`: requests per second across all threads (None: no limit).
    pub fn new(rate: Option<f64>) -> Pacer {
        let rate = rate.filter(|r| *r > 0.0);
        Pacer {
            bucket: Mutex::new(Bucket {
                target: rate,
                current: rate,
                ceiling: rate.unwrap_or(0.0),
                // Start with one token: no burst at start-up beyond one request.
                tokens: 1.0,
                last: Instant::now(),
                paused_until: None,
                window_start: Instant::now(),
                window_count: 0,
                observed: 0.0,
                last_cut: None,
            }),
        }
    }

    /// Blocks until this thread may send one request.
    pub fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match b.paused_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        b.paused_until = None;
                        let window = now.duration_since(b.window_start).as_secs_f64();
                        if window >= 1.0 {
                            b.observed = f64::from(b.window_count) / window;
                            b.window_start = now;
                            b.window_count = 0;
                        }
                        let Some(rate) = b.current else {
                            b.window_count += 1;
                            return;
                        };
                        let elapsed = now.duration_since(b.last).as_secs_f64();
                        b.last = now;
                        // Recover toward the ceiling: +10 % of it per second (AIMD).
                        let mut rate = (rate + b.ceiling * 0.1 * elapsed).min(b.ceiling.max(FLOOR));
                        if b.target.is_none() && rate >= b.ceiling {
                            b.current = None; // fully recovered: unlimited again
                            b.window_count += 1;
                            return;
                        }
                        if let Some(target) = b.target {
                            rate = rate.min(target);
                        }
                        b.current = Some(rate);
                        // A bucket of one: strict pacing, no bursts after a quiet spell.
                        b.tokens = (b.tokens + elapsed * rate).min(1.0);
                        if b.tokens >= 1.0 {
                            b.tokens -= 1.0;
                            b.window_count += 1;
                            return;
                        }
                        Duration::from_secs_f64((1.0 - b.tokens) / rate)
                    }
                }
            };
            std::thread::sleep(wait);
        }
    }

    /// The server refused us for rate: pause everyone and halve the rate.
    pub fn throttled(&self, pause: Duration) {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let until = now + pause;
        if b.paused_until.is_none_or(|u| u < until) {
            b.paused_until = Some(until);
        }
        if b.last_cut
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        b.last_cut = Some(now);
        let window = now.duration_since(b.window_start).as_secs_f64().max(0.05);
        let observed = b.observed.max(f64::from(b.window_count) / window);
        let base = b
            .current
            .unwrap_or(if observed > 0.0 { observed } else { 10.0 });
        if b.target.is_none() && b.current.is_none() {
            b.ceiling = base;
        }
        b.current = Some((base / 2.0).max(FLOOR));
        b.tokens = 0.0;
        b.last = now;
    }

    /// The rate in force (for the summary and tests).
    pub fn current_rate(&self) -> Option<f64> {
        self.bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
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
