use wire::UnixMillis;

/// `12D3KooWAbCd…xYz123`: enough to tell ids apart in a table.
pub(crate) fn short_id(id: &str) -> String {
    if id.len() <= 20 {
        return id.to_owned();
    }
    format!("{}…{}", &id[..10], &id[id.len() - 6..])
}

pub(crate) fn ago(now: UnixMillis, then: UnixMillis) -> String {
    let s = now.0.saturating_sub(then.0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// How long until `then`: `in 5 min`, `in 3 h 20 min`, `in 2 d`, with the
/// UTC time for anything further than an hour.
pub(crate) fn until(now: UnixMillis, then: UnixMillis) -> String {
    let s = then.0.saturating_sub(now.0).div_ceil(1000);
    match s {
        0..=59 => format!("in {s} s"),
        60..=3599 => format!("in {} min", s.div_ceil(60)),
        3600..=86_399 => format!(
            "in {} h {} min ({})",
            s / 3600,
            s % 3600 / 60,
            wire::schedule::utc_text(then)
        ),
        _ => format!("in {} d ({})", s / 86_400, wire::schedule::utc_text(then)),
    }
}

/// Where a node stands with its schedule, for people: `closed · opens in
/// 2 h`, or `None` when it is open (or has no schedule).
pub(crate) fn schedule_note(
    now: UnixMillis,
    status: Option<wire::schedule::ScheduleStatus>,
) -> Option<String> {
    let s = status?;
    if s.open {
        return None;
    }
    Some(match s.opens_at {
        Some(at) => format!("closed · opens {}", until(now, at)),
        None => "closed this week".into(),
    })
}

/// Millisatoshis as satoshis: `12,345 sat`, or `12,345.678 sat` when
/// there are millisatoshis.
pub(crate) fn sats(msat: u64) -> String {
    let whole = msat / 1000;
    let mut digits = whole.to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    let frac = msat % 1000;
    if frac == 0 {
        format!("{digits}{grouped} sat")
    } else {
        format!("{digits}{grouped}.{frac:03} sat")
    }
}

/// Whole satoshis typed in a field, as millisatoshis; empty is none.
pub(crate) fn sats_field(text: &str) -> Result<Option<wire::MilliSats>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>()
        .map(|sat| Some(wire::MilliSats(sat.saturating_mul(1000))))
        .map_err(|_| format!("`{text}` is not a number of sat"))
}

/// A signed amount: `+12 sat`, `−3.5 sat`.
pub(crate) fn signed_sats(msat: i64) -> String {
    let sign = if msat < 0 { "−" } else { "+" };
    format!("{sign}{}", sats(msat.unsigned_abs()))
}

pub(crate) fn gib(mb: u64) -> String {
    format!("{:.1} GiB", mb as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_keep_both_ends() {
        let id = "12D3KooWGzBvN9sEkFc1Lk2mPq7nX3r5t6y8u9i0o1p2";
        assert_eq!(short_id(id), "12D3KooWGz…i0o1p2");
        assert_eq!(short_id("short"), "short");
    }

    #[test]
    fn amounts_read_as_satoshis() {
        assert_eq!(sats(0), "0 sat");
        assert_eq!(sats(1_000), "1 sat");
        assert_eq!(sats(12_345_678), "12,345.678 sat");
        assert_eq!(sats(1_234_567_000), "1,234,567 sat");
        assert_eq!(signed_sats(-3_500), "−3.500 sat");
        assert_eq!(signed_sats(2_000), "+2 sat");
        assert_eq!(sats_field(" 12 "), Ok(Some(wire::MilliSats(12_000))));
        assert_eq!(sats_field(""), Ok(None));
        assert!(sats_field("1.5").is_err());
    }

    #[test]
    fn ages_are_rounded_to_a_readable_unit() {
        assert_eq!(ago(UnixMillis(5_000), UnixMillis(0)), "5 s ago");
        assert_eq!(ago(UnixMillis(120_000), UnixMillis(0)), "2 min ago");
        assert_eq!(ago(UnixMillis(0), UnixMillis(5_000)), "0 s ago");
    }
}
