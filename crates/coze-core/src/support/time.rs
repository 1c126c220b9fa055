//! The time as messages need it: now in Unix seconds, and a moment said relative to
//! now ("in 14 min", "3 min ago"). Token expiry is judged by this clock.

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// "3 min ago" / "in 14 min", for messages.
pub fn ago(at: i64, now: i64) -> String {
    if at == 0 {
        return "at an unknown time".into();
    }
    let d = at - now;
    let (n, unit) = match d.abs() {
        s if s < 120 => (s, "s"),
        s if s < 7200 => (s / 60, "min"),
        s if s < 172_800 => (s / 3600, "h"),
        s => (s / 86_400, "days"),
    };
    if d >= 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_naturally() {
        assert_eq!(ago(1000, 1000 - 30), "in 30 s");
        assert_eq!(ago(1000, 1000 + 600), "10 min ago");
        assert_eq!(ago(0, 5), "at an unknown time");
    }
}
