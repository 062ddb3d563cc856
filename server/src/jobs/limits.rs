//! How fast jobs may come: each one holds money and a node's time, so one
//! account, or one client address, that floods the server is cut off with
//! 429 and `Retry-After` before anything is recorded or held.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use wire::AccountId;

use super::JobError;
use crate::config::JobRates;

pub(crate) struct Submissions {
    account: DefaultKeyedRateLimiter<AccountId>,
    ip: DefaultKeyedRateLimiter<IpAddr>,
}

/// `per_minute` a minute, as many at once.
fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

fn verdict<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), JobError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        JobError::RateLimited {
            retry_after_secs: wait.as_secs() + 1,
        }
    })
}

impl Submissions {
    pub(crate) fn new(rates: JobRates) -> Self {
        Submissions {
            account: RateLimiter::keyed(quota(rates.per_account)),
            ip: RateLimiter::keyed(quota(rates.per_ip)),
        }
    }

    /// One more job of `account`'s.
    pub(crate) fn account(&self, account: &AccountId) -> Result<(), JobError> {
        verdict(&self.account, account)
    }

    /// One more job from `ip`.
    pub(crate) fn ip(&self, ip: IpAddr) -> Result<(), JobError> {
        verdict(&self.ip, &ip)
    }

    /// Drops the state of keys that are back to a full quota.
    pub(crate) fn shrink(&self) {
        self.account.retain_recent();
        self.ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_account_or_address_is_cut_off_with_a_wait() {
        let limits = Submissions::new(JobRates {
            per_account: 3,
            per_ip: 5,
        });
        let (a, b) = (
            AccountId::from_random([1; 16]),
            AccountId::from_random([2; 16]),
        );
        for _ in 0..3 {
            limits.account(&a).unwrap();
        }
        match limits.account(&a) {
            Err(JobError::RateLimited { retry_after_secs }) => {
                assert!((1..=21).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Another account is not held back by the first.
        limits.account(&b).unwrap();
        let ip = IpAddr::from([192, 0, 2, 7]);
        for _ in 0..5 {
            limits.ip(ip).unwrap();
        }
        assert!(matches!(limits.ip(ip), Err(JobError::RateLimited { .. })));
        limits.ip(IpAddr::from([192, 0, 2, 8])).unwrap();
        limits.shrink();
    }
}
