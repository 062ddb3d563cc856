//! When a node takes jobs: weekly windows in the node's time zone, one-off
//! maintenance windows, and a lead before each close during which it takes
//! no new jobs so that the running ones end before the window does.
//!
//! Operators write a [`Schedule`]; nodes turn it into absolute UTC
//! [`Span`]s for the week ahead ([`Schedule::open_spans`]) and put those
//! in their ads ([`Availability`]), so that consumers, the registry and
//! other servers need no time-zone database, and daylight-saving changes
//! are already applied.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Most weekly windows one schedule may hold.
pub const MAX_WEEKLY_WINDOWS: usize = 7 * 24;
/// Most maintenance windows one schedule may hold.
pub const MAX_MAINTENANCE_WINDOWS: usize = 32;
/// The longest drain lead an operator may set.
pub const MAX_DRAIN_MINUTES: u16 = 24 * 60;
/// How far ahead a node puts its open spans in its ads.
pub const HORIZON_MS: u64 = 7 * DAY_MS;
/// Most spans an ad's availability may hold.
pub const MAX_SPANS: usize = 2 * MAX_WEEKLY_WINDOWS + MAX_MAINTENANCE_WINDOWS + 2;

const DAY_MS: u64 = 24 * 3600 * 1000;
const MINUTE_MS: u64 = 60_000;

/// A weekly window in the schedule's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeeklyWindow {
    /// 0 = Monday … 6 = Sunday.
    pub day: u8,
    /// Minutes after local midnight; `start_minute < end_minute <= 1440`.
    /// A window over midnight is two windows.
    pub start_minute: u16,
    pub end_minute: u16,
}

/// A one-off time the node is closed (maintenance, a move, a price spike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub from: UnixMillis,
    pub until: UnixMillis,
    /// The operator's words, shown in the fleet pages only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// When a node takes jobs, as its operator sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// An IANA time zone (`Europe/Berlin`); the weekly windows are in it.
    pub time_zone: String,
    /// When the node is open each week; none: every hour of the week.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekly: Vec<WeeklyWindow>,
    /// One-off closures, whatever the weekly windows say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<Maintenance>,
    /// Minutes before each close from which the node takes no new jobs
    /// (it drains), so that its jobs end inside the window.
    #[serde(default = "default_drain_minutes")]
    pub drain_minutes: u16,
}

fn default_drain_minutes() -> u16 {
    5
}

/// Whether `name` is a time zone this crate knows (IANA names).
pub fn is_time_zone(name: &str) -> bool {
    name.len() <= 64 && TimeZone::get(name).is_ok()
}

/// `at` as people read it: `2026-11-27 14:00 UTC`.
pub fn utc_text(at: UnixMillis) -> String {
    match Timestamp::from_millisecond(i64::try_from(at.0).unwrap_or(i64::MAX)) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => format!("{} ms after 1970", at.0),
    }
}

/// An absolute stretch of time, `from` included, `until` not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Span {
    pub from: UnixMillis,
    pub until: UnixMillis,
}

impl Span {
    pub fn contains(&self, at: UnixMillis) -> bool {
        self.from <= at && at < self.until
    }
}

/// What an ad says of a node's schedule: when it takes jobs from the ad's
/// issue until `until` (a week ahead). Outside these spans it refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Availability {
    /// Sorted, disjoint, not touching.
    pub open: Vec<Span>,
    /// Where the node's knowledge of its schedule ends.
    pub until: UnixMillis,
}

/// Where a node stands with its schedule at a given time (as `/nodes`
/// shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleStatus {
    /// Inside an open span now.
    pub open: bool,
    /// When it next opens, if it is closed (none within the horizon:
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<UnixMillis>,
    /// When it next closes, if it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<UnixMillis>,
}

impl Availability {
    pub fn is_open(&self, at: UnixMillis) -> bool {
        self.open.iter().any(|s| s.contains(at))
    }

    pub fn status(&self, at: UnixMillis) -> ScheduleStatus {
        match self.open.iter().find(|s| s.contains(at)) {
            Some(span) => ScheduleStatus {
                open: true,
                opens_at: None,
                closes_at: (span.until < self.until).then_some(span.until),
            },
            None => ScheduleStatus {
                open: false,
                opens_at: self.open.iter().find(|s| s.from > at).map(|s| s.from),
                closes_at: None,
            },
        }
    }

    /// Checks what a receiver must be able to rely on.
    pub fn check(&self) -> Result<(), String> {
        if self.open.len() > MAX_SPANS {
            return Err(format!(
                "{} open spans; at most {MAX_SPANS}",
                self.open.len()
            ));
        }
        let mut last_end: Option<UnixMillis> = None;
        for s in &self.open {
            if s.from >= s.until || last_end.is_some_and(|e| s.from <= e) || s.until > self.until {
                return Err(
                    "open spans must be non-empty, sorted, apart, and end by `until`".into(),
                );
            }
            last_end = Some(s.until);
        }
        Ok(())
    }
}

impl Schedule {
    /// Open at every hour, in UTC: what a node without a schedule does.
    pub fn always() -> Schedule {
        Schedule {
            time_zone: "UTC".into(),
            weekly: Vec::new(),
            maintenance: Vec::new(),
            drain_minutes: default_drain_minutes(),
        }
    }

    /// Whether the schedule never closes the node.
    pub fn is_always(&self) -> bool {
        self.weekly.is_empty() && self.maintenance.is_empty()
    }

    fn zone(&self) -> Result<TimeZone, String> {
        TimeZone::get(&self.time_zone)
            .map_err(|_| format!("`{}` is not a known time zone", self.time_zone))
    }

    /// Checks the schedule as a whole: its time zone exists, its windows
    /// are well formed, and it is not too long.
    pub fn check(&self) -> Result<(), String> {
        if self.time_zone.len() > 64 {
            return Err("the time zone name is too long".into());
        }
        self.zone()?;
        if self.weekly.len() > MAX_WEEKLY_WINDOWS {
            return Err(format!(
                "{} weekly windows; at most {MAX_WEEKLY_WINDOWS}",
                self.weekly.len()
            ));
        }
        for w in &self.weekly {
            if w.day > 6 {
                return Err(format!("day {} is not 0 (Monday) to 6 (Sunday)", w.day));
            }
            if w.start_minute >= w.end_minute || w.end_minute > 1440 {
                return Err(format!(
                    "window {}..{} is not within 0..1440 minutes and non-empty",
                    w.start_minute, w.end_minute
                ));
            }
        }
        if self.maintenance.len() > MAX_MAINTENANCE_WINDOWS {
            return Err(format!(
                "{} maintenance windows; at most {MAX_MAINTENANCE_WINDOWS}",
                self.maintenance.len()
            ));
        }
        for m in &self.maintenance {
            if m.from >= m.until {
                return Err("a maintenance window must end after it starts".into());
            }
            if m.note.len() > 200 {
                return Err("a maintenance note is at most 200 bytes".into());
            }
        }
        if self.drain_minutes > MAX_DRAIN_MINUTES {
            return Err(format!("drain_minutes is at most {MAX_DRAIN_MINUTES}"));
        }
        Ok(())
    }

    /// When the node takes new jobs from `from` for `horizon_ms`: the
    /// weekly windows in UTC (daylight saving applied; adjacent windows
    /// joined), less the maintenance windows, each ended `drain_minutes`
    /// before it closes. An end that is only the horizon's is not a close.
    pub fn open_spans(&self, from: UnixMillis, horizon_ms: u64) -> Result<Vec<Span>, String> {
        self.check()?;
        let end = UnixMillis(from.0.saturating_add(horizon_ms));
        let lead = u64::from(self.drain_minutes) * MINUTE_MS;
        // Look past the horizon by the lead, so that a close just after it
        // still ends the last span early.
        let limit = UnixMillis(end.0.saturating_add(lead));
        let mut spans = if self.weekly.is_empty() {
            vec![Span { from, until: limit }]
        } else {
            self.weekly_spans(from, limit)?
        };
        for m in &self.maintenance {
            spans = spans
                .into_iter()
                .flat_map(|s| subtract(s, m.from, m.until))
                .collect();
        }
        Ok(spans
            .into_iter()
            .filter_map(|s| {
                let until = if s.until >= limit {
                    end
                } else {
                    UnixMillis(s.until.0.saturating_sub(lead)).min(end)
                };
                let from = s.from.max(from);
                (from < until).then_some(Span { from, until })
            })
            .collect())
    }

    /// The weekly windows as UTC spans covering `from..limit`, sorted and
    /// joined where they touch.
    fn weekly_spans(&self, from: UnixMillis, limit: UnixMillis) -> Result<Vec<Span>, String> {
        let tz = self.zone()?;
        let ts = |ms: u64| {
            Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
                .map_err(|e| e.to_string())
        };
        // Local dates from the day before `from` to the day after `limit`.
        let first: Date = tz
            .to_datetime(ts(from.0)?)
            .date()
            .yesterday()
            .map_err(|e| e.to_string())?;
        let last: Date = tz
            .to_datetime(ts(limit.0)?)
            .date()
            .tomorrow()
            .map_err(|e| e.to_string())?;
        let mut spans = Vec::new();
        let mut date = first;
        while date <= last {
            let day = date.weekday().to_monday_zero_offset();
            for w in self
                .weekly
                .iter()
                .filter(|w| i8::try_from(w.day) == Ok(day))
            {
                let at = |minute: u16| -> Result<UnixMillis, String> {
                    let local: DateTime = if minute >= 1440 {
                        date.tomorrow()
                            .map_err(|e| e.to_string())?
                            .to_datetime(Time::midnight())
                    } else {
                        date.to_datetime(Time::midnight())
                            .checked_add((i64::from(minute)).minutes())
                            .map_err(|e| e.to_string())?
                    };
                    let at = tz.to_timestamp(local).map_err(|e| e.to_string())?;
                    Ok(UnixMillis(u64::try_from(at.as_millisecond()).unwrap_or(0)))
                };
                let span = Span {
                    from: at(w.start_minute)?,
                    until: at(w.end_minute)?,
                };
                if span.from < span.until && span.until > from && span.from < limit {
                    spans.push(Span {
                        from: span.from.max(from),
                        until: span.until.min(limit),
                    });
                }
            }
            date = date.tomorrow().map_err(|e| e.to_string())?;
        }
        spans.sort_by_key(|s| s.from);
        let mut joined: Vec<Span> = Vec::with_capacity(spans.len());
        for s in spans {
            match joined.last_mut() {
                Some(last) if s.from <= last.until => last.until = last.until.max(s.until),
                _ => joined.push(s),
            }
        }
        Ok(joined)
    }

    /// The spans and how far they reach, as an ad carries them; `None` for
    /// a schedule that never closes the node.
    pub fn availability(&self, from: UnixMillis) -> Result<Option<Availability>, String> {
        if self.is_always() {
            return Ok(None);
        }
        Ok(Some(Availability {
            open: self.open_spans(from, HORIZON_MS)?,
            until: UnixMillis(from.0.saturating_add(HORIZON_MS)),
        }))
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Reads weekly windows written one rule per line (or `;`-separated), as
/// operators write them: `Mon-Fri 09:00-17:00`, `Sat,Sun 10:00-14:00`,
/// `daily 22:00-06:00` (over midnight: two windows), `Wed 00:00-24:00`.
/// Empty text: no windows (always open).
pub fn parse_weekly(text: &str) -> Result<Vec<WeeklyWindow>, String> {
    let mut out = Vec::new();
    for rule in text
        .split(['\n', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let (days, hours) = rule.rsplit_once(' ').ok_or_else(|| {
            format!("`{rule}`: write days, then hours, e.g. `Mon-Fri 09:00-17:00`")
        })?;
        let days = parse_days(days.trim()).map_err(|e| format!("`{rule}`: {e}"))?;
        let (from, to) = hours
            .split_once('-')
            .ok_or_else(|| format!("`{rule}`: hours are `HH:MM-HH:MM`"))?;
        let (from, to) = (
            parse_minute(from).map_err(|e| format!("`{rule}`: {e}"))?,
            parse_minute(to).map_err(|e| format!("`{rule}`: {e}"))?,
        );
        if from == to {
            return Err(format!("`{rule}`: the window is empty"));
        }
        for day in days {
            if from < to {
                out.push(WeeklyWindow {
                    day,
                    start_minute: from,
                    end_minute: to,
                });
            } else {
                // Over midnight: the evening, and the next morning.
                out.push(WeeklyWindow {
                    day,
                    start_minute: from,
                    end_minute: 1440,
                });
                if to > 0 {
                    out.push(WeeklyWindow {
                        day: (day + 1) % 7,
                        start_minute: 0,
                        end_minute: to,
                    });
                }
            }
        }
    }
    if out.len() > MAX_WEEKLY_WINDOWS {
        return Err(format!(
            "{} windows; at most {MAX_WEEKLY_WINDOWS}",
            out.len()
        ));
    }
    Ok(out)
}

fn parse_days(text: &str) -> Result<Vec<u8>, String> {
    let day = |d: &str| -> Result<u8, String> {
        let d = d.trim().to_ascii_lowercase();
        DAYS.iter()
            .position(|name| d.len() >= 3 && d.starts_with(name))
            .map(|i| i as u8)
            .ok_or_else(|| format!("`{d}` is not a day (Mon … Sun)"))
    };
    let lower = text.to_ascii_lowercase();
    if matches!(lower.as_str(), "daily" | "every day" | "all") {
        return Ok((0..7).collect());
    }
    let mut days = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days.push(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days.push(day(part)?),
        }
    }
    Ok(days)
}

fn parse_minute(text: &str) -> Result<u16, String> {
    let text = text.trim();
    let (h, m) = text.split_once(':').unwrap_or((text, "0"));
    match (h.parse::<u16>(), m.parse::<u16>()) {
        (Ok(24), Ok(0)) => Ok(1440),
        (Ok(h), Ok(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(format!("`{text}` is not a time (HH:MM)")),
    }
}

/// Weekly windows as [`parse_weekly`] reads them, one per line.
pub fn format_weekly(windows: &[WeeklyWindow]) -> String {
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    windows
        .iter()
        .map(|w| {
            let day = DAYS.get(usize::from(w.day)).copied().unwrap_or("mon");
            let mut name = day.to_owned();
            name[..1].make_ascii_uppercase();
            format!("{name} {}-{}", hm(w.start_minute), hm(w.end_minute))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A local date and time (`2026-11-28T10:00`, as a browser's
/// `datetime-local` input gives it, or with a space) in `time_zone`.
pub fn parse_local(text: &str, time_zone: &str) -> Result<UnixMillis, String> {
    let tz = TimeZone::get(time_zone).map_err(|_| format!("`{time_zone}` is not a time zone"))?;
    let local: DateTime = text
        .trim()
        .replace(' ', "T")
        .parse()
        .map_err(|_| format!("`{text}` is not a date and time (YYYY-MM-DD HH:MM)"))?;
    let at = tz.to_timestamp(local).map_err(|e| e.to_string())?;
    u64::try_from(at.as_millisecond())
        .map(UnixMillis)
        .map_err(|_| "a time before 1970".into())
}

/// `at` in `time_zone`, as [`parse_local`] reads it (`2026-11-28 10:00`).
pub fn local_text(at: UnixMillis, time_zone: &str) -> String {
    let Ok(tz) = TimeZone::get(time_zone) else {
        return utc_text(at);
    };
    match Timestamp::from_millisecond(i64::try_from(at.0).unwrap_or(i64::MAX)) {
        Ok(ts) => tz.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => utc_text(at),
    }
}

/// `span` less `from..until`: zero, one or two spans.
fn subtract(span: Span, from: UnixMillis, until: UnixMillis) -> Vec<Span> {
    if until <= span.from || from >= span.until {
        return vec![span];
    }
    let mut out = Vec::new();
    if span.from < from {
        out.push(Span {
            from: span.from,
            until: from,
        });
    }
    if until < span.until {
        out.push(Span {
            from: until,
            until: span.until,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600 * 1000;

    /// Milliseconds of a UTC date and time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> UnixMillis {
        let ts = jiff::civil::date(y, mo, d).at(h, mi, 0, 0);
        let ts = TimeZone::UTC.to_timestamp(ts).unwrap();
        UnixMillis(ts.as_millisecond() as u64)
    }

    fn weekdays_nine_to_five(tz: &str) -> Schedule {
        Schedule {
            time_zone: tz.into(),
            weekly: (0..5)
                .map(|day| WeeklyWindow {
                    day,
                    start_minute: 9 * 60,
                    end_minute: 17 * 60,
                })
                .collect(),
            maintenance: vec![],
            drain_minutes: 0,
        }
    }

    #[test]
    fn weekly_windows_are_read_in_the_node_s_time_zone() {
        // Monday 2026-06-01; Berlin is UTC+2 in summer.
        let s = weekdays_nine_to_five("Europe/Berlin");
        let spans = s.open_spans(utc(2026, 6, 1, 0, 0), HORIZON_MS).unwrap();
        assert_eq!(spans.len(), 5);
        assert_eq!(
            spans[0],
            Span {
                from: utc(2026, 6, 1, 7, 0),
                until: utc(2026, 6, 1, 15, 0)
            }
        );
        assert_eq!(spans[4].from, utc(2026, 6, 5, 7, 0));
        // Winter: UTC+1.
        let winter = s.open_spans(utc(2026, 12, 7, 0, 0), HORIZON_MS).unwrap();
        assert_eq!(winter[0].from, utc(2026, 12, 7, 8, 0));
    }

    #[test]
    fn daylight_saving_moves_the_utc_hours_within_one_week() {
        // Berlin moves its clocks forward on Sunday 2026-03-29: 9:00 local
        // is 8:00 UTC on the Friday before and 7:00 UTC the Monday after.
        let s = weekdays_nine_to_five("Europe/Berlin");
        let spans = s.open_spans(utc(2026, 3, 27, 0, 0), 4 * 24 * HOUR).unwrap();
        assert_eq!(spans[0].from, utc(2026, 3, 27, 8, 0));
        assert_eq!(spans[1].from, utc(2026, 3, 30, 7, 0));
        assert_eq!(spans[1].until, utc(2026, 3, 30, 15, 0));
    }

    #[test]
    fn adjacent_windows_join_and_the_horizon_is_not_a_close() {
        let mut s = Schedule::always();
        s.drain_minutes = 10;
        s.weekly = (0..7)
            .flat_map(|day| {
                [
                    WeeklyWindow {
                        day,
                        start_minute: 0,
                        end_minute: 720,
                    },
                    WeeklyWindow {
                        day,
                        start_minute: 720,
                        end_minute: 1440,
                    },
                ]
            })
            .collect();
        let from = utc(2026, 6, 3, 12, 34);
        assert_eq!(
            s.open_spans(from, HORIZON_MS).unwrap(),
            vec![Span {
                from,
                until: UnixMillis(from.0 + HORIZON_MS)
            }]
        );
    }

    #[test]
    fn maintenance_cuts_the_windows_and_closes_drain_early() {
        let mut s = Schedule::always();
        s.drain_minutes = 15;
        let from = utc(2026, 6, 1, 0, 0);
        s.maintenance = vec![Maintenance {
            from: utc(2026, 6, 2, 10, 0),
            until: utc(2026, 6, 2, 14, 0),
            note: "new PSU".into(),
        }];
        let a = s.availability(from).unwrap().unwrap();
        assert_eq!(
            a.open,
            vec![
                Span {
                    from,
                    until: utc(2026, 6, 2, 9, 45)
                },
                Span {
                    from: utc(2026, 6, 2, 14, 0),
                    until: a.until
                }
            ]
        );
        assert!(a.check().is_ok());
        // Inside the drain lead: closed, back when maintenance ends.
        let st = a.status(utc(2026, 6, 2, 9, 50));
        assert!(!st.open);
        assert_eq!(st.opens_at, Some(utc(2026, 6, 2, 14, 0)));
        let st = a.status(utc(2026, 6, 2, 9, 0));
        assert_eq!(st.closes_at, Some(utc(2026, 6, 2, 9, 45)));
        // Open to the horizon: no close to report.
        assert_eq!(a.status(utc(2026, 6, 3, 0, 0)).closes_at, None);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let mut s = weekdays_nine_to_five("Mars/Olympus");
        assert!(s.check().unwrap_err().contains("time zone"));
        s.time_zone = "America/New_York".into();
        assert!(s.check().is_ok());
        assert_eq!(utc_text(utc(2026, 11, 27, 14, 5)), "2026-11-27 14:05 UTC");
        s.weekly[0].end_minute = 1441;
        assert!(s.check().is_err());
        s.weekly[0].end_minute = 60;
        s.weekly[0].day = 7;
        assert!(s.check().is_err());
        s.weekly[0].day = 0;
        s.maintenance = vec![Maintenance {
            from: UnixMillis(10),
            until: UnixMillis(10),
            note: String::new(),
        }];
        assert!(s.check().is_err());
        assert!(Schedule::always()
            .availability(UnixMillis(0))
            .unwrap()
            .is_none());
        let overlapping = Availability {
            open: vec![
                Span {
                    from: UnixMillis(1),
                    until: UnixMillis(5),
                },
                Span {
                    from: UnixMillis(4),
                    until: UnixMillis(9),
                },
            ],
            until: UnixMillis(10),
        };
        assert!(overlapping.check().is_err());
    }

    #[test]
    fn operators_write_windows_as_they_say_them() {
        let w = parse_weekly("Mon-Fri 09:00-17:00\nSat,Sun 10-14; daily 23:00-01:30").unwrap();
        assert_eq!(w.len(), 5 + 2 + 14);
        assert_eq!(
            w[0],
            WeeklyWindow {
                day: 0,
                start_minute: 540,
                end_minute: 1020
            }
        );
        assert_eq!(
            w[5],
            WeeklyWindow {
                day: 5,
                start_minute: 600,
                end_minute: 840
            }
        );
        // Sunday night runs into Monday morning.
        assert_eq!(
            w[19],
            WeeklyWindow {
                day: 6,
                start_minute: 1380,
                end_minute: 1440
            }
        );
        assert_eq!(
            w[20],
            WeeklyWindow {
                day: 0,
                start_minute: 0,
                end_minute: 90
            }
        );
        assert_eq!(parse_weekly("Fri-Mon 00:00-24:00").unwrap().len(), 4);
        assert_eq!(parse_weekly("  ").unwrap(), vec![]);
        for bad in [
            "Mon",
            "Funday 09:00-10:00",
            "Mon 25:00-26:00",
            "Mon 09:00-09:00",
        ] {
            assert!(parse_weekly(bad).is_err(), "{bad}");
        }
        let text = format_weekly(&parse_weekly("Tue 08:30-24:00").unwrap());
        assert_eq!(text, "Tue 08:30-24:00");
        assert_eq!(parse_weekly(&text).unwrap()[0].end_minute, 1440);
    }

    #[test]
    fn local_times_are_read_in_the_schedule_s_zone() {
        let at = parse_local("2026-06-01T09:00", "Europe/Berlin").unwrap();
        assert_eq!(at, utc(2026, 6, 1, 7, 0));
        assert_eq!(local_text(at, "Europe/Berlin"), "2026-06-01 09:00");
        assert_eq!(
            parse_local("2026-06-01 09:00", "UTC").unwrap(),
            utc(2026, 6, 1, 9, 0)
        );
        assert!(parse_local("tomorrow", "UTC").is_err());
        assert!(parse_local("2026-06-01T09:00", "Atlantis").is_err());
    }
}
