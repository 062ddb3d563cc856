//! Rate limits on what costs us or invites guessing: starting a sign-in or
//! sign-up (per client IP) and making keys and tokens (per account).
//! Answered with 429 and `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use wire::AccountId;

use super::AuthError;

pub(crate) struct Limits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    creation: DefaultKeyedRateLimiter<AccountId>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per).allow_burst(burst)
}

impl Limits {
    /// Sign-in and sign-up ceremonies: a burst of 20 per IP, then 20 a
    /// minute. Keys and enrolment tokens: a burst of 10 per account, then
    /// 10 a minute.
    pub(crate) fn standard() -> Self {
        Limits {
            sign_in: RateLimiter::keyed(quota(20, 20)),
            creation: RateLimiter::keyed(quota(10, 10)),
        }
    }

    fn verdict<K: std::hash::Hash + Eq + Clone>(
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), AuthError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AuthError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    pub(crate) fn sign_in(&self, ip: IpAddr) -> Result<(), AuthError> {
        Self::verdict(&self.sign_in, &ip)
    }

    pub(crate) fn key_creation(&self, account: &AccountId) -> Result<(), AuthError> {
        Self::verdict(&self.creation, account)
    }

    /// Drops the state of keys that are back to a full quota.
    pub(crate) fn shrink(&self) {
        self.sign_in.retain_recent();
        self.creation.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_sign_ins_from_one_address_is_cut_off_with_a_wait() {
        let limits = Limits::standard();
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..20 {
            limits.sign_in(ip).unwrap();
        }
        match limits.sign_in(ip) {
            Err(AuthError::RateLimited { retry_after_secs }) => {
                assert!((1..=4).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Another address is not held back by the first.
        limits.sign_in(IpAddr::from([192, 0, 2, 2])).unwrap();
    }
}
