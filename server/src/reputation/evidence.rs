//! A node's evidence, a day at a time, and what it adds up to: the
//! reputation score and the weight routing gives the node.
//!
//! **The score** (0 to 100) is `100 × c × u × k × ½^d` over the last
//! [`REPUTATION_DAYS`] days, where
//! - `c = (succeeded + 9.5) / (jobs + 10)`: completion, with the prior of
//!   a node that completes 95 % of its jobs worth ten jobs;
//! - `u = (slots heard + 11.4) / (slots since first heard + 12)`: uptime in
//!   five-minute slots, with the prior of 95 % worth an hour;
//! - `k = (canaries passed + 9.5) / (canaries + 10)`: canary pass rate,
//!   with the same prior as completion;
//! - `d`: disputes lost.
//!
//! A newcomer scores 86; a node whose every job fails falls under 50 by
//! its tenth.
//!
//! **Routing** ranks the nodes that can take a job by
//! `price / max(w, 0.01)`, with `w = score / 100 × ½^f` and `f` the tries
//! the node failed or refused in the last fifteen minutes: a cheap node
//! that fails stops winning at once (three recent failures make it look
//! eight times dearer), and for good as its score falls.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use wire::reputation::{ModelLatency, Reputation, ReputationDay, REPUTATION_DAYS};
use wire::{MilliSats, ModelHash, UnixMillis};

pub(crate) const DAY_MS: u64 = 24 * 3600 * 1000;
/// Uptime is counted in slots of this length with at least one beat.
pub(crate) const SLOT_MS: u64 = 5 * 60 * 1000;
const SLOTS_PER_DAY: u64 = DAY_MS / SLOT_MS;
/// Failures this recent weigh on routing.
pub(crate) const RECENT_MS: u64 = 15 * 60 * 1000;
/// Latency buckets per doubling: a bucket's edges are 9 % apart.
const BUCKETS_PER_OCTAVE: f64 = 8.0;

pub(crate) fn day_of(t: UnixMillis) -> u64 {
    t.0 - t.0 % DAY_MS
}

/// A latency histogram: counts in buckets whose edges grow by 2^(1/8),
/// so quantiles are within 5 % of the truth and any number of days and
/// servers add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<(u16, u64)>", from = "Vec<(u16, u64)>")]
pub(crate) struct Histogram(BTreeMap<u16, u64>);

/// Stored as `[[bucket, count], …]`.
impl From<Histogram> for Vec<(u16, u64)> {
    fn from(h: Histogram) -> Self {
        h.0.into_iter().collect()
    }
}

impl From<Vec<(u16, u64)>> for Histogram {
    fn from(pairs: Vec<(u16, u64)>) -> Self {
        let mut h = Histogram::default();
        for (bucket, n) in pairs {
            *h.0.entry(bucket).or_default() += n;
        }
        h
    }
}

impl Histogram {
    fn bucket(ms: u64) -> u16 {
        let b = ((ms as f64 + 1.0).log2() * BUCKETS_PER_OCTAVE).floor();
        b.clamp(0.0, f64::from(u16::MAX)) as u16
    }

    /// The middle of a bucket, in milliseconds.
    fn value(bucket: u16) -> u64 {
        let v = 2f64.powf((f64::from(bucket) + 0.5) / BUCKETS_PER_OCTAVE) - 1.0;
        v.round().max(0.0) as u64
    }

    pub(crate) fn add(&mut self, ms: u64) {
        *self.0.entry(Self::bucket(ms)).or_default() += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The `q` quantile (0 to 1), or none when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, count) in &self.0 {
            seen += count;
            if seen >= rank {
                return Some(Self::value(*b));
            }
        }
        None
    }
}

/// One node's evidence for one UTC day, as this server saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Day {
    /// The five-minute slots of the day in which the node was heard from.
    #[serde(with = "slot_list")]
    pub(crate) slots: [u64; 5],
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    /// Succeeded jobs' latency by model hash.
    #[serde(default)]
    pub(crate) latency: BTreeMap<ModelHash, Histogram>,
    #[serde(default)]
    pub(crate) canaries_passed: u64,
    #[serde(default)]
    pub(crate) canaries_failed: u64,
    #[serde(default)]
    pub(crate) disputes_lost: u64,
    /// The GPUs (bit `i`: `cuda:i`) that ran jobs whose receipts checked
    /// out: what backs the GPUs a node claims.
    #[serde(default)]
    pub(crate) gpus_used: u32,
}

/// Slots are stored as the list of their numbers (0 to 287): readable, and
/// no integer wider than the database's.
mod slot_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(bits: &[u64; 5], s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<u16> = (0..320u16)
            .filter(|i| bits[usize::from(i / 64)] & (1 << (i % 64)) != 0)
            .collect();
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; 5], D::Error> {
        let mut bits = [0u64; 5];
        for i in Vec::<u16>::deserialize(d)? {
            if i < 288 {
                bits[usize::from(i / 64)] |= 1 << (i % 64);
            }
        }
        Ok(bits)
    }
}

impl Day {
    fn mark(&mut self, slot: u64) {
        if slot < SLOTS_PER_DAY {
            self.slots[(slot / 64) as usize] |= 1 << (slot % 64);
        }
    }

    fn has(&self, slot: u64) -> bool {
        slot < SLOTS_PER_DAY && self.slots[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    fn heard(&self) -> u64 {
        self.slots.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn first_slot(&self) -> Option<u64> {
        (0..SLOTS_PER_DAY).find(|s| self.has(*s))
    }

    /// Adds another server's (or another copy's) evidence of the same day.
    pub(crate) fn merge(&mut self, other: &Day) {
        for (a, b) in self.slots.iter_mut().zip(other.slots) {
            *a |= b;
        }
        self.ok += other.ok;
        self.failed += other.failed;
        for (model, h) in &other.latency {
            self.latency.entry(*model).or_default().merge(h);
        }
        self.canaries_passed += other.canaries_passed;
        self.canaries_failed += other.canaries_failed;
        self.disputes_lost += other.disputes_lost;
        self.gpus_used |= other.gpus_used;
    }
}

/// How a job's try on a node ended, as far as the node's record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran and its receipt checked out, in this many milliseconds, on
    /// the GPU its receipt names (none: on the CPU).
    Succeeded {
        model: ModelHash,
        ms: u64,
        gpu: Option<u8>,
    },
    /// The node failed it: unreachable, silent, broke off, a bad receipt,
    /// or refused a model it advertises.
    Failed,
    /// The node turned it down (busy, paused): not a broken job, but
    /// routing should look elsewhere for a while.
    Refused,
    /// It answered a canary as the known answer says.
    CanaryPassed,
    /// It answered a canary otherwise.
    CanaryFailed,
    /// Its answer was found wrong: by a canary with a second node agreeing
    /// with the known answer, or by two other nodes agreeing.
    DisputeLost,
}

/// A node's days, oldest first: a sorted vector (a map's nodes would cost
/// a kilobyte and more per node, and there are at most 30 days).
#[derive(Debug, Clone, Default)]
pub(crate) struct Days(Vec<(u64, Day)>);

impl Days {
    pub(crate) fn get(&self, day: &u64) -> Option<&Day> {
        self.0
            .binary_search_by_key(day, |(d, _)| *d)
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The day's evidence, made empty if there is none yet.
    pub(crate) fn entry(&mut self, day: u64) -> &mut Day {
        let i = match self.0.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (day, Day::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub(crate) fn insert(&mut self, day: u64, evidence: Day) {
        *self.entry(day) = evidence;
    }

    pub(crate) fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.0.retain(|(d, _)| keep(*d));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Day)> {
        self.0.iter().map(|(d, e)| (*d, e))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Everything known of one node: its days (the last
/// [`REPUTATION_DAYS`]) and its recent failures.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    pub(crate) days: Days,
    recent: VecDeque<UnixMillis>,
}

impl Evidence {
    fn day(&mut self, at: UnixMillis) -> &mut Day {
        self.days.entry(day_of(at))
    }

    /// The node was heard from at `at`.
    pub(crate) fn heard(&mut self, at: UnixMillis) {
        let slot = (at.0 % DAY_MS) / SLOT_MS;
        self.day(at).mark(slot);
    }

    /// Whether the node was heard from in `at`'s slot already.
    pub(crate) fn heard_in_slot(&self, at: UnixMillis) -> bool {
        self.days
            .get(&day_of(at))
            .is_some_and(|d| d.has((at.0 % DAY_MS) / SLOT_MS))
    }

    pub(crate) fn job(&mut self, outcome: Outcome, at: UnixMillis) {
        match outcome {
            Outcome::Succeeded { model, ms, gpu } => {
                let day = self.day(at);
                day.ok += 1;
                day.latency.entry(model).or_default().add(ms);
                if let Some(i) = gpu.filter(|i| *i < 32) {
                    day.gpus_used |= 1 << i;
                }
            }
            Outcome::Failed => {
                self.day(at).failed += 1;
                self.recent.push_back(at);
            }
            Outcome::Refused => self.recent.push_back(at),
            Outcome::CanaryPassed => self.day(at).canaries_passed += 1,
            Outcome::CanaryFailed => {
                self.day(at).canaries_failed += 1;
                self.recent.push_back(at);
            }
            Outcome::DisputeLost => self.day(at).disputes_lost += 1,
        }
    }

    /// Forgets what is older than the window, as of `now`.
    pub(crate) fn prune(&mut self, now: UnixMillis) {
        let oldest = day_of(now).saturating_sub(u64::from(REPUTATION_DAYS - 1) * DAY_MS);
        self.days.retain(|d| d >= oldest);
        while self
            .recent
            .front()
            .is_some_and(|t| now.0.saturating_sub(t.0) > RECENT_MS)
        {
            self.recent.pop_front();
        }
    }

    pub(crate) fn recent_failures(&self, now: UnixMillis) -> u32 {
        let n = self
            .recent
            .iter()
            .filter(|t| now.0.saturating_sub(t.0) <= RECENT_MS)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The slot the node was first heard in (of the days kept), as a slot
    /// number since the epoch.
    fn first_heard(&self) -> Option<u64> {
        self.days
            .iter()
            .find_map(|(day, d)| d.first_slot().map(|s| day / SLOT_MS + s))
    }

    /// Slots heard and slots that could have been, from `from` (a slot
    /// number since the epoch) through `now`'s slot (which counts only
    /// once heard: it is not over yet).
    fn uptime_slots(&self, from: u64, until: u64, now: UnixMillis) -> (u64, u64) {
        let Some(first) = self.first_heard() else {
            return (0, 0);
        };
        let now_slot = now.0 / SLOT_MS;
        let start = from.max(first);
        let end = until.min(now_slot + 1);
        if start >= end {
            return (0, 0);
        }
        let mut heard = 0;
        let from_day = start / SLOTS_PER_DAY * DAY_MS;
        for (day, d) in self.days.iter().filter(|(day, _)| *day >= from_day) {
            let base = day / SLOT_MS;
            if base >= end {
                break;
            }
            if start <= base && base + SLOTS_PER_DAY <= end {
                heard += d.heard();
            } else {
                heard += (start.max(base)..end.min(base + SLOTS_PER_DAY))
                    .filter(|s| d.has(s - base))
                    .count() as u64;
            }
        }
        let now_heard = self.heard_in_slot(now);
        let possible = end - start - u64::from(end == now_slot + 1 && !now_heard);
        (heard, possible)
    }

    /// The reputation as of `now`.
    pub(crate) fn reputation(&self, now: UnixMillis) -> Reputation {
        let mut all = Day::default();
        for (_, d) in self.days.iter() {
            all.merge(d);
        }
        let (heard, possible) = self.uptime_slots(0, u64::MAX, now);
        let jobs = all.ok + all.failed;
        let c = (all.ok as f64 + 9.5) / (jobs as f64 + 10.0);
        let u = (heard as f64 + 11.4) / (possible as f64 + 12.0);
        let canaries = all.canaries_passed + all.canaries_failed;
        let k = (all.canaries_passed as f64 + 9.5) / (canaries as f64 + 10.0);
        let d = 0.5f64.powi(i32::try_from(all.disputes_lost).unwrap_or(i32::MAX));
        let score = (100.0 * c * u * k * d).round().clamp(0.0, 100.0) as u8;
        Reputation {
            score,
            uptime_pct: (possible > 0).then(|| percent(heard, possible)),
            jobs,
            failed: all.failed,
            completion_pct: (jobs > 0).then(|| percent(all.ok, jobs)),
            recent_failures: self.recent_failures(now),
            latency: all
                .latency
                .iter()
                .filter_map(|(model, h)| {
                    Some(ModelLatency {
                        model: *model,
                        jobs: h.count(),
                        p50_ms: h.quantile(0.5)?,
                        p95_ms: h.quantile(0.95)?,
                    })
                })
                .collect(),
            canaries_passed: all.canaries_passed,
            canaries_failed: all.canaries_failed,
            disputes_lost: all.disputes_lost,
            gpus_backed: (0..32u32)
                .filter(|i| all.gpus_used & (1 << i) != 0)
                .collect(),
        }
    }

    /// Each day of the window up to `now`'s, oldest first, from the first
    /// day the node was heard from.
    pub(crate) fn daily(&self, now: UnixMillis) -> Vec<ReputationDay> {
        let Some(first) = self.days.iter().next().map(|(day, _)| day) else {
            return Vec::new();
        };
        (first..=day_of(now))
            .step_by(DAY_MS as usize)
            .map(|day| {
                let d = self.days.get(&day).cloned().unwrap_or_default();
                let base = day / SLOT_MS;
                let (heard, possible) = self.uptime_slots(base, base + SLOTS_PER_DAY, now);
                ReputationDay {
                    day: UnixMillis(day),
                    uptime_pct: (possible > 0).then(|| percent(heard, possible)),
                    jobs: d.ok + d.failed,
                    failed: d.failed,
                }
            })
            .collect()
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

/// What routing compares: the price a node asks, made dearer the less it
/// can be trusted (see the module's documentation). Lower is better.
pub(crate) fn routing_cost(price: MilliSats, score: u8, recent_failures: u32) -> u64 {
    let w = f64::from(score) / 100.0 * 0.5f64.powi(i32::try_from(recent_failures).unwrap_or(64));
    (price.0 as f64 / w.max(0.01)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_785_000_000_000 - 1_785_000_000_000 % DAY_MS;

    fn at(min: u64) -> UnixMillis {
        UnixMillis(T0 + min * 60_000)
    }

    #[test]
    fn a_newcomer_scores_86_and_a_node_failing_every_job_falls_under_50_by_its_tenth() {
        let mut e = Evidence::default();
        e.heard(at(0));
        assert_eq!(e.reputation(at(1)).score, 86);
        assert_eq!(e.reputation(at(1)).uptime_pct, Some(100.0));
        assert_eq!(e.reputation(at(1)).completion_pct, None);
        for i in 0..10 {
            e.job(Outcome::Failed, at(i));
        }
        let r = e.reputation(at(10));
        assert_eq!((r.jobs, r.failed, r.completion_pct), (10, 10, Some(0.0)));
        assert!(r.score < 50, "{}", r.score);
        assert_eq!(r.recent_failures, 10);
        // Fifteen minutes later they no longer weigh on routing.
        assert_eq!(e.reputation(at(26)).recent_failures, 0);
    }

    #[test]
    fn uptime_counts_the_slots_heard_since_the_first_and_the_current_one_once_heard() {
        let mut e = Evidence::default();
        // Heard every 5 min for 2 h, silent 1 h, heard again.
        for m in (0..120).step_by(5) {
            e.heard(at(m));
        }
        // 24 slots heard of 24 so far (slot 24 is the current one, not heard).
        assert_eq!(e.uptime_slots(0, u64::MAX, at(121)), (24, 24));
        // An hour later: 12 more slots, none heard.
        assert_eq!(e.uptime_slots(0, u64::MAX, at(181)), (24, 36));
        e.heard(at(181));
        assert_eq!(e.uptime_slots(0, u64::MAX, at(181)), (25, 37));
        let r = e.reputation(at(181));
        assert_eq!(r.uptime_pct, Some(67.6));
        // Per day: today only.
        let days = e.daily(at(181));
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].uptime_pct, Some(67.6));
    }

    #[test]
    fn a_day_without_a_beat_is_a_day_down_and_days_before_the_first_are_not() {
        let mut e = Evidence::default();
        e.heard(at(60 * 23 + 55)); // the last slot of day 0
        let day2 = 2 * 24 * 60;
        e.heard(at(day2));
        let days = e.daily(at(day2));
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].uptime_pct, Some(100.0));
        assert_eq!(days[1].uptime_pct, Some(0.0));
        assert_eq!(days[2].uptime_pct, Some(100.0));
        // 2 heard of 1 + 288 + 1.
        assert_eq!(e.uptime_slots(0, u64::MAX, at(day2)), (2, 290));
    }

    #[test]
    fn latency_quantiles_are_within_five_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000 {
            h.add(ms);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p95 = h.quantile(0.95).unwrap() as f64;
        assert!((p50 - 500.0).abs() / 500.0 < 0.05, "{p50}");
        assert!((p95 - 950.0).abs() / 950.0 < 0.05, "{p95}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut zero = Histogram::default();
        zero.add(0);
        assert_eq!(zero.quantile(0.5), Some(0));
    }

    #[test]
    fn days_merge_and_survive_their_stored_form() {
        let model = ModelHash::of(b"m");
        let mut a = Day::default();
        a.mark(0);
        a.mark(287);
        a.ok = 2;
        a.latency.entry(model).or_default().add(120);
        let mut b = Day::default();
        b.mark(1);
        b.failed = 1;
        b.latency.entry(model).or_default().add(130);
        a.merge(&b);
        assert_eq!((a.heard(), a.ok, a.failed), (3, 2, 1));
        assert_eq!(a.latency[&model].count(), 2);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["slots"], serde_json::json!([0, 1, 287]));
        let back: Day = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn old_days_are_forgotten() {
        let mut e = Evidence::default();
        e.heard(at(0));
        e.job(Outcome::Failed, at(0));
        let later = UnixMillis(T0 + u64::from(REPUTATION_DAYS) * DAY_MS);
        e.heard(later);
        e.prune(later);
        assert_eq!(e.days.len(), 1);
        assert_eq!(e.reputation(later).failed, 0);
    }

    #[test]
    fn routing_makes_a_cheap_node_that_fails_dearer_than_a_dear_one_that_works() {
        let cheap = MilliSats(100);
        let dear = MilliSats(900);
        // Both new: the cheap one wins.
        assert!(routing_cost(cheap, 86, 0) < routing_cost(dear, 86, 0));
        // Three recent failures: the cheap one looks 8 times dearer.
        let ratio = routing_cost(cheap, 86, 3) as f64 / routing_cost(cheap, 86, 0) as f64;
        assert!((ratio - 8.0).abs() < 0.05, "{ratio}");
        assert!(routing_cost(cheap, 86, 4) > routing_cost(dear, 86, 0));
        // A long record of failures, with none recent: still losing.
        assert!(routing_cost(cheap, 8, 0) > routing_cost(dear, 95, 0));
        // Free stays free; a score of 0 is floored, not a division by 0.
        assert_eq!(routing_cost(MilliSats(0), 0, 9), 0);
        assert_eq!(routing_cost(cheap, 0, 0), 10_000);
    }
}
