//! Failed-login limiting per user name and source address, so passwords cannot be guessed at
//! argon2's speed from one place. Kept in memory per replica.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Counts failures in a fixed window starting at the first failure.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: DashMap<(String, Option<IpAddr>), (Instant, u32)>,
}

/// Entries kept before old windows are swept.
const MAX_TRACKED: usize = 100_000;

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: DashMap::new(),
        }
    }

    fn key(username: &str, ip: Option<IpAddr>) -> (String, Option<IpAddr>) {
        (username.to_ascii_lowercase(), ip)
    }

    /// `Some(seconds to wait)` when this name and address have failed too often.
    pub fn blocked(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        if self.failures.is_empty() {
            return None;
        }
        let entry = self.failures.get(&Self::key(username, ip))?;
        let (started, count) = *entry;
        let elapsed = started.elapsed();
        (count >= self.max_failures && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        if self.failures.len() >= MAX_TRACKED {
            let window = self.window;
            self.failures
                .retain(|_, (started, _)| started.elapsed() < window);
        }
        let mut entry = self
            .failures
            .entry(Self::key(username, ip))
            .or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    pub fn record_success(&self, username: &str, ip: Option<IpAddr>) {
        // The common case has nothing to forget; a read keeps it off the shard's write lock.
        if self.failures.is_empty() {
            return;
        }
        let key = Self::key(username, ip);
        if self.failures.contains_key(&key) {
            self.failures.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_per_name_and_address() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        for _ in 0..2 {
            limiter.record_failure("Alice", ip);
        }
        assert_eq!(limiter.blocked("alice", ip), None);
        limiter.record_failure("alice", ip);
        assert!(limiter.blocked("ALICE", ip).is_some_and(|s| s <= 60));
        assert_eq!(
            limiter.blocked("alice", Some("10.0.0.2".parse().unwrap())),
            None,
            "another address is not blocked"
        );
        assert_eq!(
            limiter.blocked("bob", ip),
            None,
            "another name is not blocked"
        );
        limiter.record_success("alice", ip);
        assert_eq!(limiter.blocked("alice", ip), None);
    }
}
