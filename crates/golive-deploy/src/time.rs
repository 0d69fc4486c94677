//! Durations as the lifecycle records and shows them.

/// Seconds from `a` to `b` (RFC 3339 timestamps), to the millisecond.
pub fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a: jiff::Timestamp = a.parse().ok()?;
    let b: jiff::Timestamp = b.parse().ok()?;
    Some((b.duration_since(a).as_secs_f64() * 1e3).round() / 1e3)
}

/// `0.42s`, `12.3s`, `4m05s`.
pub fn minutes_text(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}
