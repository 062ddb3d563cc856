//! Choosing among providers: price first, then how soon each can start
//! (its load), then how close it is (measured round trip).

use std::time::Duration;

use p2p::PeerId;
use wire::ads::CapabilityAd;
use wire::registry::{ModelOffer, Task};
use wire::{MilliSats, UnixMillis};

/// A provider that offers the model, with what we measured of it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub peer: PeerId,
    pub ad: CapabilityAd,
    pub offer: ModelOffer,
    pub rtt: Duration,
}

impl Candidate {
    /// A rough wait before the job starts: half a round trip per queued or
    /// running job per unit of capacity, plus the round trip itself. Only
    /// used to order providers of equal price.
    pub fn expected_wait(&self) -> Duration {
        let busy = self.ad.load.utilisation();
        self.rtt
            + self.rtt.mul_f64(busy.min(1_000.0) / 2.0)
            + Duration::from_millis((busy * 50.0) as u64)
    }
}

/// The candidates that can take the job now (open, right task, at or under
/// `max_price`), best first.
pub fn rank(
    candidates: Vec<Candidate>,
    task: Task,
    max_price: Option<MilliSats>,
    now: UnixMillis,
) -> Vec<Candidate> {
    let mut eligible: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| c.ad.is_open(now) && !c.ad.is_expired(now))
        .filter(|c| c.offer.task == task)
        .filter(|c| max_price.is_none_or(|max| c.offer.price_msat <= max))
        .collect();
    eligible.sort_by(|a, b| {
        a.offer
            .price_msat
            .cmp(&b.offer.price_msat)
            .then(a.expected_wait().cmp(&b.expected_wait()))
            .then(a.peer.cmp(&b.peer))
    });
    eligible
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::fixtures::NOW;
    use wire::schedule::{Availability, Span};

    fn candidate(price: u64, active: u32, rtt_ms: u64) -> Candidate {
        let key = p2p::Keypair::generate_ed25519();
        let mut ad = testkit::fixtures::ad(&key, 1, NOW, 30_000);
        ad.multiaddrs.clear();
        ad.models[0].price_msat = MilliSats(price);
        ad.load.active_jobs = active;
        Candidate {
            peer: key.public().to_peer_id(),
            offer: ad.models[0].clone(),
            ad,
            rtt: Duration::from_millis(rtt_ms),
        }
    }

    fn order(ranked: &[Candidate], all: &[Candidate]) -> Vec<usize> {
        ranked
            .iter()
            .map(|r| all.iter().position(|c| c.peer == r.peer).unwrap())
            .collect()
    }

    #[test]
    fn cheapest_first_then_least_loaded_then_nearest() {
        let all = vec![
            candidate(2000, 0, 1),  // 0: dearest
            candidate(1000, 4, 1),  // 1: cheap but busy
            candidate(1000, 0, 50), // 2: cheap, idle, far
            candidate(1000, 0, 2),  // 3: cheap, idle, near
        ];
        let ranked = rank(all.clone(), Task::Embedding, None, NOW);
        assert_eq!(order(&ranked, &all), vec![3, 2, 1, 0]);
    }

    #[test]
    fn price_cap_closed_schedule_and_paused_nodes_are_left_out() {
        let mut all = vec![
            candidate(1000, 0, 1),
            candidate(3000, 0, 1),
            candidate(500, 0, 1),
            candidate(500, 0, 1),
        ];
        all[2].ad.accepting_jobs = false;
        // Open only at a time that is not now.
        all[3].ad.availability = Some(Availability {
            open: vec![Span {
                from: UnixMillis(NOW.0 + 3_600_000),
                until: UnixMillis(NOW.0 + 7_200_000),
            }],
            until: UnixMillis(NOW.0 + 86_400_000),
        });
        let ranked = rank(all.clone(), Task::Embedding, Some(MilliSats(2000)), NOW);
        assert_eq!(order(&ranked, &all), vec![0]);
        let expired = rank(all, Task::Embedding, None, UnixMillis(NOW.0 + 60_000));
        assert!(expired.is_empty());
    }
}
