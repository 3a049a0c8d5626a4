//! Login throttling per account and per address, with exponential back-off. Kept in memory per
//! instance: an attacker spreading guesses over several instances gains at most that factor.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failures an account may have in a window before back-off starts.
pub const FREE_FAILURES: u32 = 5;
/// Failures one address may have (across accounts) before back-off starts: higher, because
/// many honest users can share an address behind a proxy.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 50;

/// A throttled key and how many failures it is allowed before back-off.
pub type Key = (String, u32);

/// The keys of a login attempt: the account, and the address when there is one.
pub fn login_keys(username: &str, address: Option<&str>) -> Vec<Key> {
    let mut keys = vec![(format!("user:{username}"), FREE_FAILURES)];
    if let Some(a) = address {
        keys.push((format!("ip:{a}"), FREE_FAILURES_PER_ADDRESS));
    }
    keys
}
/// A failure older than this no longer counts.
pub const WINDOW_MINUTES: i64 = 15;
/// The longest back-off.
pub const MAX_LOCK_SECONDS: i64 = 15 * 60;

#[derive(Debug, Clone, Default)]
struct Failures {
    count: u32,
    first_at: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
}

/// What the throttle says about a failed attempt, for the audit summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// The first failure of a window: worth an audit entry.
    First,
    /// A later failure: counted, summarised when back-off starts or the next login succeeds.
    Counted,
    /// This failure started (or lengthened) a back-off of so many seconds.
    Locked(i64),
}

#[derive(Default)]
pub struct LoginThrottle {
    map: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// Seconds to wait before any of `keys` may try again, if one is locked.
    pub fn retry_after(&self, keys: &[Key], now: DateTime<Utc>) -> Option<i64> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|(k, _)| map.get(k)?.locked_until)
            .filter(|t| *t > now)
            .map(|t| (t - now).num_seconds().max(1))
            .max()
    }

    /// Count a failure for every key; returns what happened to the first (the account).
    pub fn failed(&self, keys: &[Key], now: DateTime<Utc>) -> Noted {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut first = Noted::Counted;
        for (i, (k, free)) in keys.iter().enumerate() {
            let f = map.entry(k.clone()).or_default();
            if f.first_at
                .is_none_or(|t| now - t > Duration::minutes(WINDOW_MINUTES))
            {
                *f = Failures {
                    count: 0,
                    first_at: Some(now),
                    locked_until: None,
                };
            }
            f.count += 1;
            let noted = if f.count == 1 {
                Noted::First
            } else if f.count > *free {
                let secs = (1i64 << (f.count - free).min(20)).min(MAX_LOCK_SECONDS);
                f.locked_until = Some(now + Duration::seconds(secs));
                Noted::Locked(secs)
            } else {
                Noted::Counted
            };
            if i == 0 {
                first = noted;
            }
        }
        // Keep the map bounded: forget windows that have passed.
        if map.len() > 100_000 {
            map.retain(|_, f| {
                f.first_at
                    .is_some_and(|t| now - t <= Duration::minutes(WINDOW_MINUTES))
            });
        }
        first
    }

    /// A successful login clears the account's failures; returns how many there were.
    pub fn succeeded(&self, account_key: &str) -> u32 {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(account_key).map_or(0, |f| f.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_after_the_free_failures_and_forgets_after_the_window() {
        let t = LoginThrottle::default();
        let keys = login_keys("a", Some("10.0.0.1"));
        let now = Utc::now();
        assert_eq!(t.failed(&keys, now), Noted::First);
        for _ in 1..FREE_FAILURES {
            assert_eq!(t.failed(&keys, now), Noted::Counted);
        }
        assert_eq!(t.retry_after(&keys, now), None);
        assert_eq!(t.failed(&keys, now), Noted::Locked(2));
        assert_eq!(t.failed(&keys, now), Noted::Locked(4));
        assert_eq!(t.retry_after(&keys, now), Some(4));
        assert_eq!(t.retry_after(&login_keys("b", Some("10.0.0.1")), now), None);
        let later = now + Duration::minutes(WINDOW_MINUTES + 1);
        assert_eq!(t.retry_after(&keys, later), None);
        assert_eq!(t.failed(&keys, later), Noted::First);
        assert_eq!(t.succeeded("user:a"), 1);
        for _ in 0..40 {
            t.failed(&keys, now);
        }
        assert_eq!(t.retry_after(&keys, now), Some(MAX_LOCK_SECONDS));
        // The address has had 47 failures in this window: 3 more before it backs off too.
        let other_account = login_keys("c", Some("10.0.0.1"));
        assert_eq!(t.failed(&other_account, now), Noted::First);
        assert_eq!(t.retry_after(&other_account, now), None);
    }
}
