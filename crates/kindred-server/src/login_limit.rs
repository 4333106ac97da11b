//! Failed dashboard logins, limited per client address: at most `per_minute` failures in a
//! one-minute window, then 429 with `Retry-After` until the window ends. Addresses come from
//! the network, so the table is bounded: when it holds [`MAX_ADDRESSES`] addresses and none of
//! their windows has ended, a failure from a new address is limited too (fail closed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kindred_serving::sync::lock;

/// Most client addresses tracked at once.
pub const MAX_ADDRESSES: usize = 10_000;

const WINDOW: Duration = Duration::from_secs(60);

/// Failures per address in the current window.
pub struct LoginLimit {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `addr` may try again, when it is limited now.
    pub fn wait(&self, addr: Option<IpAddr>) -> Option<u64> {
        let failures = lock(&self.failures);
        let addr = addr?;
        match failures.get(&addr) {
            Some((start, count)) => {
                let left = WINDOW.checked_sub(start.elapsed())?;
                (*count >= self.per_minute).then(|| left.as_secs().max(1))
            }
            None => (failures.len() >= MAX_ADDRESSES
                && failures.values().all(|(start, _)| start.elapsed() < WINDOW))
            .then_some(WINDOW.as_secs()),
        }
    }

    /// Counts a failed login from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>) {
        let Some(addr) = addr else { return };
        let mut failures = lock(&self.failures);
        if !failures.contains_key(&addr) && failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if failures.len() >= MAX_ADDRESSES {
                return;
            }
        }
        let entry = failures.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Addresses tracked now.
    pub fn addresses(&self) -> usize {
        lock(&self.failures).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_its_failures_and_others_are_not() {
        let limit = LoginLimit::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.wait(Some(a)), None);
            limit.failed(Some(a));
        }
        let wait = limit.wait(Some(a)).unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(limit.wait(Some(b)), None);
        assert_eq!(limit.wait(None), None);
    }

    #[test]
    fn the_table_stays_bounded_under_many_addresses() {
        let limit = LoginLimit::new(1);
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            limit.failed(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(limit.addresses(), MAX_ADDRESSES);
        let new: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(limit.wait(Some(new)), Some(60), "a full table fails closed");
    }
}
