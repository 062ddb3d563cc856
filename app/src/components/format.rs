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
    fn ages_are_rounded_to_a_readable_unit() {
        assert_eq!(ago(UnixMillis(5_000), UnixMillis(0)), "5 s ago");
        assert_eq!(ago(UnixMillis(120_000), UnixMillis(0)), "2 min ago");
        assert_eq!(ago(UnixMillis(0), UnixMillis(5_000)), "0 s ago");
    }
}
