//! The operator's own view of their nodes' record: uptime (from the
//! telemetry they reported), completion rate and median latency (from
//! their jobs), and what they earned (from the ledger), per node, device,
//! model and day.

use std::collections::{BTreeMap, HashMap, HashSet};

use wire::fleet::{
    ActivityBucket, DayUptime, Earnings, EarningsLine, FleetStats, NodeActivity, NodeStats,
};
use wire::jobs::JobStatus;
use wire::{Caller, MilliSats, NodeId, UnixMillis};

use super::{require_any, Fleet, FleetError};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// Uptime is counted in slots of this length with at least one frame.
pub(super) const SLOT_MS: u64 = 5 * 60 * 1000;
/// The longest window the statistics cover.
pub(crate) const MAX_DAYS: u32 = 30;

/// An earnings line's key: its day, node, device and model.
type LineKey = (u64, String, String, String);

fn day_of(t: UnixMillis) -> u64 {
    t.0 - t.0 % DAY_MS
}

impl Fleet {
    /// Each of the caller's nodes' record over the last `days` UTC days
    /// (today included).
    pub(crate) async fn stats(&self, caller: &Caller, days: u32) -> Result<FleetStats, FleetError> {
        require_any(caller)?;
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(FleetError::BadRequest(format!(
                "days must be 1 to {MAX_DAYS}"
            )));
        }
        let now = UnixMillis::now();
        let since = UnixMillis(day_of(now) - u64::from(days - 1) * DAY_MS);
        let enrolled = self.inner.enrolments.nodes_of(caller).await?;
        let nodes: Vec<NodeId> = enrolled.iter().map(|(n, _)| *n).collect();
        let slots = self
            .inner
            .store
            .reported_slots(&nodes, since, SLOT_MS)
            .await?;
        let jobs = self
            .inner
            .jobs
            .facts(&nodes, since, UnixMillis(now.0 + 1), &[])
            .await
            .map_err(|e| FleetError::Jobs(e.to_string()))?;
        let earnings = self
            .earnings_lines(caller, since, UnixMillis(now.0 + 1))
            .await?;
        let stats = enrolled
            .iter()
            .map(|(node, enrolled_at)| {
                let seen: HashSet<u64> = slots
                    .iter()
                    .filter(|(n, _)| n == node)
                    .map(|(_, s)| *s)
                    .collect();
                // Uptime counts from enrolment: time before it is not down.
                let from = UnixMillis(since.0.max(enrolled_at.0 - enrolled_at.0 % SLOT_MS));
                node_stats(*node, &seen, &jobs, &earnings, from, now)
            })
            .collect();
        Ok(FleetStats {
            since,
            until: now,
            nodes: stats,
        })
    }

    /// One of the caller's nodes' jobs from `since` to `until` in at most
    /// [`MAX_BUCKETS`] buckets: how many succeeded and failed, their median
    /// latency, and what they earned (from the ledger).
    pub(crate) async fn activity(
        &self,
        caller: &Caller,
        node: NodeId,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<NodeActivity, FleetError> {
        require_any(caller)?;
        self.own(caller, node).await?;
        if since >= until || until.0 - since.0 > u64::from(MAX_DAYS) * DAY_MS {
            return Err(FleetError::BadRequest(format!(
                "since must be before until, at most {MAX_DAYS} days"
            )));
        }
        let bucket_ms = bucket_for(until.0 - since.0);
        let start = since.0 - since.0 % bucket_ms;
        let jobs = self
            .inner
            .jobs
            .facts(&[node], UnixMillis(start), until, &[])
            .await
            .map_err(|e| FleetError::Jobs(e.to_string()))?;
        let postings = self
            .inner
            .ledger
            .job_earnings(&caller.account, UnixMillis(start), until)
            .await
            .map_err(|e| FleetError::Jobs(e.to_string()))?;
        Ok(NodeActivity {
            since: UnixMillis(start),
            until,
            bucket_ms,
            buckets: buckets(&jobs, &postings, start, until.0, bucket_ms),
        })
    }

    /// What the caller's nodes earned from `since` to `until`, per UTC day,
    /// node, device and model.
    pub(crate) async fn earnings(
        &self,
        caller: &Caller,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<Earnings, FleetError> {
        require_any(caller)?;
        if since >= until {
            return Err(FleetError::BadRequest("since must be before until".into()));
        }
        let lines = self.earnings_lines(caller, since, until).await?;
        let total = lines.iter().map(|l| l.earned_msat.0).sum();
        Ok(Earnings {
            since,
            until,
            lines,
            total_msat: MilliSats(total),
        })
    }

    async fn earnings_lines(
        &self,
        caller: &Caller,
        since: UnixMillis,
        until: UnixMillis,
    ) -> Result<Vec<EarningsLine>, FleetError> {
        let postings = self
            .inner
            .ledger
            .job_earnings(&caller.account, since, until)
            .await
            .map_err(|e| FleetError::Jobs(e.to_string()))?;
        if postings.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = postings
            .iter()
            .map(|(j, _, _)| j.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let facts: HashMap<String, _> = self
            .inner
            .jobs
            .facts(&[], since, until, &ids)
            .await
            .map_err(|e| FleetError::Jobs(e.to_string()))?
            .into_iter()
            .map(|f| (f.job_id.clone(), f))
            .collect();
        // (day, node, device, model) → (jobs, msat). Earnings of a job
        // whose record is gone still count, under "unknown".
        let mut lines: BTreeMap<LineKey, (HashSet<String>, i64)> = BTreeMap::new();
        let mut nodes: HashMap<String, NodeId> = HashMap::new();
        for (job, amount, at) in postings {
            let fact = facts.get(&job);
            let node = fact.map(|f| f.node_id);
            let node_key = node.map(|n| n.to_string()).unwrap_or_default();
            if let Some(n) = node {
                nodes.insert(node_key.clone(), n);
            }
            let key = (
                day_of(at),
                node_key,
                fact.and_then(|f| f.device.clone())
                    .unwrap_or_else(|| "unknown".into()),
                fact.map(|f| f.model.clone())
                    .unwrap_or_else(|| "unknown".into()),
            );
            let entry = lines.entry(key).or_default();
            entry.0.insert(job);
            entry.1 += amount;
        }
        Ok(lines
            .into_iter()
            .filter_map(|((day, node, device, model), (jobs, msat))| {
                Some(EarningsLine {
                    day: UnixMillis(day),
                    node_id: *nodes.get(&node)?,
                    device,
                    model,
                    jobs: jobs.len() as u64,
                    earned_msat: MilliSats(u64::try_from(msat).unwrap_or(0)),
                })
            })
            .collect())
    }
}

/// Most buckets an activity series has.
pub(crate) const MAX_BUCKETS: u64 = 72;

/// The shortest of the usual bucket lengths that cuts `span_ms` into at
/// most [`MAX_BUCKETS`].
fn bucket_for(span_ms: u64) -> u64 {
    const MINUTE: u64 = 60_000;
    [1, 5, 15, 60, 240, 720, 1440]
        .iter()
        .map(|m| m * MINUTE)
        .find(|b| span_ms.div_ceil(*b) <= MAX_BUCKETS)
        .unwrap_or(DAY_MS)
}

/// Jobs (by when they were dispatched) and earnings postings (by when
/// they were made, for the jobs among `jobs`) in buckets from `start`.
fn buckets(
    jobs: &[crate::jobs::JobFact],
    postings: &[(String, i64, UnixMillis)],
    start: u64,
    until: u64,
    bucket_ms: u64,
) -> Vec<ActivityBucket> {
    let n = usize::try_from(until.saturating_sub(start).div_ceil(bucket_ms)).unwrap_or(0);
    let index = |t: UnixMillis| -> Option<usize> {
        let i = usize::try_from(t.0.checked_sub(start)? / bucket_ms).ok()?;
        (i < n).then_some(i)
    };
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut out: Vec<ActivityBucket> = (0..n)
        .map(|i| ActivityBucket {
            at: UnixMillis(start + i as u64 * bucket_ms),
            succeeded: 0,
            failed: 0,
            median_latency_ms: None,
            earned_msat: MilliSats(0),
        })
        .collect();
    for j in jobs {
        let Some(i) = index(j.created_at) else {
            continue;
        };
        match j.status {
            JobStatus::Succeeded => {
                out[i].succeeded += 1;
                if let Some(f) = j.finished_at {
                    latencies[i].push(f.0.saturating_sub(j.created_at.0));
                }
            }
            JobStatus::Failed => out[i].failed += 1,
            JobStatus::Dispatched => {}
        }
    }
    let node_jobs: HashSet<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    let mut earned = vec![0i64; n];
    for (job, amount, at) in postings {
        if let (true, Some(i)) = (node_jobs.contains(job.as_str()), index(*at)) {
            earned[i] += amount;
        }
    }
    for (i, b) in out.iter_mut().enumerate() {
        b.median_latency_ms = median(&mut latencies[i]);
        b.earned_msat = MilliSats(u64::try_from(earned[i]).unwrap_or(0));
    }
    out
}

fn median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2
    } else {
        values[mid]
    })
}

fn node_stats(
    node: NodeId,
    seen: &HashSet<u64>,
    jobs: &[crate::jobs::JobFact],
    earnings: &[EarningsLine],
    from: UnixMillis,
    now: UnixMillis,
) -> NodeStats {
    // Slots from `from` up to now: later ones have not happened yet.
    let slots = |a: u64, b: u64| (b.saturating_sub(a)).div_ceil(SLOT_MS).max(1);
    let up = |a: u64, b: u64| {
        seen.iter()
            .filter(|s| **s >= a / SLOT_MS && **s < b.div_ceil(SLOT_MS))
            .count() as f32
    };
    let mut uptime_by_day = Vec::new();
    let mut day = day_of(from);
    while day < now.0 {
        let (start, end) = (day.max(from.0), (day + DAY_MS).min(now.0));
        uptime_by_day.push(DayUptime {
            day: UnixMillis(day),
            uptime_pct: (up(start, end) / slots(start, end) as f32 * 100.0).min(100.0),
        });
        day += DAY_MS;
    }
    let uptime_pct = (up(from.0, now.0) / slots(from.0, now.0) as f32 * 100.0).min(100.0);
    let mine: Vec<_> = jobs.iter().filter(|j| j.node_id == node).collect();
    let succeeded = mine
        .iter()
        .filter(|j| j.status == JobStatus::Succeeded)
        .count() as u64;
    let failed = mine
        .iter()
        .filter(|j| j.status == JobStatus::Failed)
        .count() as u64;
    let mut latencies: Vec<u64> = mine
        .iter()
        .filter(|j| j.status == JobStatus::Succeeded)
        .filter_map(|j| j.finished_at.map(|f| f.0.saturating_sub(j.created_at.0)))
        .collect();
    let median = median(&mut latencies);
    NodeStats {
        node_id: node,
        uptime_pct,
        uptime_by_day,
        jobs_succeeded: succeeded,
        jobs_failed: failed,
        completion_pct: (succeeded + failed > 0)
            .then(|| succeeded as f32 / (succeeded + failed) as f32 * 100.0),
        median_latency_ms: median,
        earned_msat: MilliSats(
            earnings
                .iter()
                .filter(|l| l.node_id == node)
                .map(|l| l.earned_msat.0)
                .sum(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobFact;

    fn job(node: NodeId, status: JobStatus, latency: u64) -> JobFact {
        JobFact {
            job_id: format!("{latency}"),
            node_id: node,
            model: "m".into(),
            status,
            created_at: UnixMillis(1000),
            finished_at: Some(UnixMillis(1000 + latency)),
            device: Some("cpu".into()),
        }
    }

    #[test]
    fn uptime_completion_and_median_latency_come_from_the_evidence() {
        let node = testkit::fixtures::node_id(1);
        let other = testkit::fixtures::node_id(2);
        let since = UnixMillis(0);
        // Half of the first day's slots reported; now is the day's end.
        let now = UnixMillis(DAY_MS);
        let seen: HashSet<u64> = (0..144).collect();
        let jobs = vec![
            job(node, JobStatus::Succeeded, 10),
            job(node, JobStatus::Succeeded, 30),
            job(node, JobStatus::Succeeded, 20),
            job(node, JobStatus::Failed, 5),
            job(other, JobStatus::Failed, 1),
        ];
        let s = node_stats(node, &seen, &jobs, &[], since, now);
        assert_eq!(s.uptime_pct, 50.0);
        assert_eq!(s.uptime_by_day.len(), 1);
        assert_eq!(s.uptime_by_day[0].uptime_pct, 50.0);
        // Enrolled at midday, up since: all of its time.
        let half: HashSet<u64> = (144..288).collect();
        let late = node_stats(node, &half, &[], &[], UnixMillis(DAY_MS / 2), now);
        assert_eq!(late.uptime_pct, 100.0);
        assert_eq!((s.jobs_succeeded, s.jobs_failed), (3, 1));
        assert_eq!(s.completion_pct, Some(75.0));
        assert_eq!(s.median_latency_ms, Some(20));
        let idle = node_stats(other, &HashSet::new(), &[], &[], since, now);
        assert_eq!(
            (idle.uptime_pct, idle.completion_pct, idle.median_latency_ms),
            (0.0, None, None)
        );
    }

    #[test]
    fn activity_buckets_count_jobs_latency_and_earnings_of_this_node_only() {
        let node = testkit::fixtures::node_id(1);
        let at = |job_id: &str, status, created: u64, latency: u64| JobFact {
            job_id: job_id.into(),
            node_id: node,
            model: "m".into(),
            status,
            created_at: UnixMillis(created),
            finished_at: Some(UnixMillis(created + latency)),
            device: None,
        };
        let min = 60_000;
        let jobs = vec![
            at("a", JobStatus::Succeeded, 10, 100),
            at("b", JobStatus::Succeeded, 20, 300),
            at("c", JobStatus::Failed, 30, 1),
            at("d", JobStatus::Succeeded, 2 * min + 5, 50),
        ];
        let postings = vec![
            ("a".to_owned(), 700, UnixMillis(200)),
            ("b".to_owned(), 300, UnixMillis(400)),
            ("d".to_owned(), 1000, UnixMillis(2 * min + 60)),
            ("someone else's".to_owned(), 5, UnixMillis(300)),
        ];
        let b = buckets(&jobs, &postings, 0, 3 * min, min);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].succeeded, b[0].failed), (2, 1));
        assert_eq!(b[0].median_latency_ms, Some(200));
        assert_eq!(b[0].earned_msat, MilliSats(1000));
        assert_eq!((b[1].succeeded, b[1].median_latency_ms), (0, None));
        assert_eq!((b[2].succeeded, b[2].earned_msat), (1, MilliSats(1000)));
        assert_eq!(bucket_for(3600 * 1000), min);
        assert_eq!(bucket_for(DAY_MS), 60 * min);
        assert_eq!(bucket_for(30 * DAY_MS), DAY_MS / 2);
        assert_eq!(bucket_for(7 * DAY_MS), 240 * min);
    }
}
