//! The operator's own view of their nodes' record: uptime (from the
//! telemetry they reported), completion rate and median latency (from
//! their jobs), and what they earned (from the ledger), per node, device,
//! model and day.

use std::collections::{BTreeMap, HashMap, HashSet};

use wire::fleet::{DayUptime, Earnings, EarningsLine, FleetStats, NodeStats};
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
    latencies.sort_unstable();
    let median = (!latencies.is_empty()).then(|| {
        let mid = latencies.len() / 2;
        if latencies.len().is_multiple_of(2) {
            (latencies[mid - 1] + latencies[mid]) / 2
        } else {
            latencies[mid]
        }
    });
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
}
