//! The node's opening hours: the schedule its operator set (over the fleet
//! link, or `--schedule` until then), kept next to the node key so that it
//! outlives restarts, and turned into the open spans its ads carry. A task
//! wakes at every opening and close (and at least hourly, to move the
//! week ahead on), so that the ads change at once and the job server
//! refuses outside the spans. A span ends `drain_minutes` before the
//! window does: from then on the node takes no new jobs, and the running
//! ones finish before the window closes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wire::schedule::{Availability, Schedule, ScheduleStatus};
use wire::UnixMillis;

/// The schedule is looked at again at least this often.
const RECOMPUTE: Duration = Duration::from_secs(3600);

/// The schedule and its spans now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Current {
    pub schedule: Option<Schedule>,
    /// `None`: always open.
    pub availability: Option<Availability>,
}

/// Shared by the job server, the advertiser, telemetry and the fleet link;
/// cheap to clone.
#[derive(Clone)]
pub struct Hours {
    current: Arc<watch::Sender<Current>>,
    file: Option<PathBuf>,
}

impl Hours {
    /// Always open, kept nowhere (tests, and nodes without a key dir).
    pub fn always() -> Hours {
        Hours {
            current: Arc::new(watch::Sender::new(Current::default())),
            file: None,
        }
    }

    /// The schedule saved in `file` if there is one (the operator's last
    /// word), else `initial` (from the command line), kept in `file` from
    /// then on.
    pub fn keep_in(file: PathBuf, initial: Option<Schedule>) -> Result<Hours, String> {
        let saved: Option<Schedule> = crate::saved::load(&file)?;
        let hours = Hours {
            current: Arc::new(watch::Sender::new(Current::default())),
            file: Some(file),
        };
        if let Some(s) = saved.or(initial) {
            hours.set(Some(s))?;
        }
        Ok(hours)
    }

    /// Replaces the schedule (`None` or an always-open one: always open);
    /// the ads change at once.
    pub fn set(&self, schedule: Option<Schedule>) -> Result<(), String> {
        let schedule = schedule.filter(|s| !s.is_always());
        if let Some(s) = &schedule {
            s.check()?;
        }
        if let Some(file) = &self.file {
            crate::saved::save(file, schedule.as_ref())?;
        }
        let availability = spans(schedule.as_ref(), UnixMillis::now())?;
        self.current.send_replace(Current {
            schedule,
            availability,
        });
        Ok(())
    }

    pub fn current(&self) -> Current {
        self.current.borrow().clone()
    }

    /// Sees every change (openings and closes included).
    pub fn watch(&self) -> watch::Receiver<Current> {
        self.current.subscribe()
    }

    pub fn is_open(&self, at: UnixMillis) -> bool {
        self.current
            .borrow()
            .availability
            .as_ref()
            .is_none_or(|a| a.is_open(at))
    }

    /// Where the node stands now; `None` without a schedule.
    pub fn status(&self, at: UnixMillis) -> Option<ScheduleStatus> {
        self.current
            .borrow()
            .availability
            .as_ref()
            .map(|a| a.status(at))
    }

    /// Recomputes the spans at every opening and close, and hourly.
    pub async fn run(self) {
        let mut changed = self.current.subscribe();
        loop {
            let now = UnixMillis::now();
            let next = {
                let current = changed.borrow_and_update();
                current.availability.as_ref().and_then(|a| {
                    a.open
                        .iter()
                        .flat_map(|s| [s.from, s.until])
                        .find(|t| *t > now)
                })
            };
            let wait = next.map_or(RECOMPUTE, |t| {
                Duration::from_millis(t.0.saturating_sub(now.0)).min(RECOMPUTE)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    let schedule = self.current.borrow().schedule.clone();
                    match spans(schedule.as_ref(), UnixMillis::now()) {
                        Ok(availability) => {
                            self.current.send_modify(|c| c.availability = availability);
                            tracing::info!(open = self.is_open(UnixMillis::now()), "schedule");
                        }
                        Err(e) => tracing::warn!(error = %e, "schedule"),
                    }
                }
                Ok(()) = changed.changed() => {}
            }
        }
    }
}

fn spans(schedule: Option<&Schedule>, now: UnixMillis) -> Result<Option<Availability>, String> {
    match schedule {
        Some(s) => s.availability(now),
        None => Ok(None),
    }
}

/// The node's own time zone, as the operating system names it.
pub fn local_time_zone() -> Option<String> {
    std::env::var("TZ")
        .ok()
        .map(|tz| tz.trim_start_matches(':').to_owned())
        .filter(|tz| wire::schedule::is_time_zone(tz))
        .or_else(|| {
            let link = std::fs::read_link("/etc/localtime").ok()?;
            let path = link.to_str()?;
            let name = path.split("zoneinfo/").nth(1)?;
            wire::schedule::is_time_zone(name).then(|| name.to_owned())
        })
        .or_else(|| {
            let name = std::fs::read_to_string("/etc/timezone").ok()?;
            let name = name.trim();
            wire::schedule::is_time_zone(name).then(|| name.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::schedule::Maintenance;

    fn closed_for(ms: u64) -> Schedule {
        let now = UnixMillis::now();
        Schedule {
            maintenance: vec![Maintenance {
                from: UnixMillis(now.0 - 1000),
                until: UnixMillis(now.0 + ms),
                note: "test".into(),
            }],
            drain_minutes: 0,
            ..Schedule::always()
        }
    }

    #[tokio::test]
    async fn the_node_closes_for_maintenance_and_opens_at_its_end_without_being_told() {
        let hours = Hours::always();
        assert!(hours.is_open(UnixMillis::now()));
        assert_eq!(hours.status(UnixMillis::now()), None);
        let mut seen = hours.watch();
        tokio::spawn(hours.clone().run());
        hours.set(Some(closed_for(300))).unwrap();
        assert!(!hours.is_open(UnixMillis::now()));
        let status = hours.status(UnixMillis::now()).unwrap();
        assert!(!status.open);
        assert!(status.opens_at.is_some());
        // The run task reopens it when the maintenance ends: awaited, not
        // polled.
        tokio::time::timeout(
            Duration::from_secs(10),
            seen.wait_for(|c| {
                c.availability
                    .as_ref()
                    .is_some_and(|a| a.is_open(UnixMillis::now()))
            }),
        )
        .await
        .expect("reopened")
        .unwrap();
        assert!(hours.is_open(UnixMillis::now()));
    }

    #[test]
    fn a_saved_schedule_outlives_a_restart_and_wins_over_the_flag() {
        let dir = std::env::temp_dir().join(format!("infernet-hours-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("schedule.json");
        let _ = std::fs::remove_file(&file);
        let hours = Hours::keep_in(file.clone(), Some(closed_for(3_600_000))).unwrap();
        assert!(!hours.is_open(UnixMillis::now()));
        hours.set(Some(closed_for(7_200_000))).unwrap();
        let again = Hours::keep_in(file.clone(), Some(closed_for(1))).unwrap();
        assert_eq!(again.current().schedule, hours.current().schedule);
        again.set(None).unwrap();
        assert!(!file.exists(), "always open: nothing kept");
        let mut bad = closed_for(1);
        bad.time_zone = "Nowhere/Else".into();
        assert!(again.set(Some(bad)).is_err());
        assert!(
            again.is_open(UnixMillis::now()),
            "a refused schedule changes nothing"
        );
    }
}
