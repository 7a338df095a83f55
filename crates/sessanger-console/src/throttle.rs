//! Failed sign-ins by client address. An address's first five failures cost nothing more; each
//! further try from it waits before it is answered (1 s, doubling, at most 30 s), until a
//! sign-in from it succeeds or it has been quiet for 15 minutes. Guessing a 256-bit secret is
//! hopeless anyway: this keeps a script from filling the log and the CPU with tries.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failures an address may have before its tries wait.
const FREE: u32 = 5;
/// The longest a try waits.
const LONGEST: Duration = Duration::from_secs(30);
/// An address quiet this long starts over.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most addresses tracked: past it, the quiet ones are forgotten, and new ones are not
/// tracked until there is room (memory stays bounded whatever a client sends).
const MOST_TRACKED: usize = 10_000;

/// Failures by address; `None` is a request whose address is unknown (the app driven without
/// a socket, as tests do).
#[derive(Debug, Default)]
pub(crate) struct Failures(Mutex<HashMap<Option<IpAddr>, Failed>>);

#[derive(Debug, Clone, Copy)]
struct Failed {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long a try from `address` waits before it is answered.
    pub(crate) fn delay(&self, address: Option<IpAddr>) -> Duration {
        let failures = self.lock();
        match failures.get(&address) {
            Some(failed) if failed.count >= FREE && failed.last.elapsed() < FORGET_AFTER => {
                let doublings = (failed.count - FREE).min(5);
                (Duration::from_secs(1) * 2u32.pow(doublings)).min(LONGEST)
            }
            _ => Duration::ZERO,
        }
    }

    /// A try from `address` failed.
    pub(crate) fn failed(&self, address: Option<IpAddr>) {
        let mut failures = self.lock();
        if failures.len() >= MOST_TRACKED && !failures.contains_key(&address) {
            failures.retain(|_, failed| failed.last.elapsed() < FORGET_AFTER);
            if failures.len() >= MOST_TRACKED {
                return;
            }
        }
        let now = Instant::now();
        let failed = failures.entry(address).or_insert(Failed { count: 0, last: now });
        if failed.last.elapsed() >= FORGET_AFTER {
            failed.count = 0;
        }
        *failed = Failed { count: failed.count.saturating_add(1), last: now };
    }

    /// A sign-in from `address` succeeded: it starts over.
    pub(crate) fn succeeded(&self, address: Option<IpAddr>) {
        self.lock().remove(&address);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Failed>> {
        // Every step leaves the map consistent: a panic elsewhere leaves nothing half-done.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_each_try_waits_longer_up_to_a_bound() {
        let failures = Failures::default();
        let (one, other): (Option<IpAddr>, Option<IpAddr>) = (Some([10, 0, 0, 1].into()), Some([10, 0, 0, 2].into()));
        for _ in 0..FREE {
            assert_eq!(failures.delay(one), Duration::ZERO);
            failures.failed(one);
        }
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                let wait = failures.delay(one);
                failures.failed(one);
                wait.as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(failures.delay(other), Duration::ZERO, "another address is not slowed down");
        failures.succeeded(one);
        assert_eq!(failures.delay(one), Duration::ZERO);
    }

    #[test]
    fn the_addresses_tracked_are_bounded() {
        let failures = Failures::default();
        for i in 0..(MOST_TRACKED as u32 + 100) {
            failures.failed(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(failures.lock().len(), MOST_TRACKED);
    }
}
