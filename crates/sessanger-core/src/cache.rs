//! A cache of values read from a database, in this process: sharded, least-recently-used
//! eviction under a memory budget, and a filling protocol for caches kept coherent by
//! invalidations.
//!
//! A value read from the database may be out of date by the time it is kept: the database may
//! have announced a change between sending the reply and the reply being kept. So a read first
//! takes a [`Ticket`], which puts a *filling* slot for its key, then reads, then hands its
//! reply to [`Cache::fill`], which keeps it only if the slot is still that ticket's: an
//! invalidation ([`Cache::forget`], [`Cache::clear`]) or a later read in between removed or
//! replaced it, and the reply is used once, not kept. The Redis store's node cache is built on
//! this (`stores/redis/src/cache.rs`).

use std::{
    borrow::Borrow,
    hash::{BuildHasher, Hash},
    num::NonZeroUsize,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use lru::LruCache;

/// What a read of the cache found.
#[derive(Debug)]
pub enum Lookup<V> {
    /// The cached value.
    Hit(V),
    /// Nothing usable: read the store, then hand the reply to [`Cache::fill`] with this ticket.
    Miss(Ticket),
}

/// Proof that a read started at a given moment, taken before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

enum Slot<V> {
    /// A read is on its way; only the read holding this ticket may fill the slot.
    Filling(Ticket),
    Ready {
        value: V,
        weight: usize,
    },
}

/// How many bytes a slot is counted for besides its value: the key, the LRU links, the slot.
const SLOT_OVERHEAD: usize = 128;

/// Locks are per shard, so concurrent requests on different sessions rarely meet.
const SHARDS: usize = 16;

/// The keys' hasher. Session ids come from clients, so it is seeded at random (nobody can pick
/// colliding keys without the seed); foldhash costs a fraction of std's SipHash on a session
/// id, and a lookup hashes its key twice (its shard, its slot): std's hashing was half of a
/// cache hit (callgrind).
type Hasher = foldhash::quality::RandomState;

struct Shard<K: Hash + Eq, V> {
    slots: LruCache<K, Slot<V>, Hasher>,
    /// What the slots cost, and how many are filled: kept as they change, so that statistics
    /// never walk the slots.
    bytes: usize,
    ready: usize,
}

/// An LRU cache of `V` by `K` with a memory budget and the filling protocol described above.
pub struct Cache<K: Hash + Eq, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    budget_per_shard: usize,
    hasher: Hasher,
    tickets: AtomicU64,
}

impl<K: Hash + Eq, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("budget_per_shard", &self.budget_per_shard).finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache holding about `budget` bytes at most.
    pub fn new(budget: NonZeroUsize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard { slots: LruCache::unbounded_with_hasher(Hasher::default()), bytes: 0, ready: 0 })
            })
            .collect();
        Cache {
            shards,
            budget_per_shard: budget.get().div_ceil(SHARDS),
            hasher: Hasher::default(),
            tickets: AtomicU64::new(0),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic while holding a shard leaves it consistent (every step below is a single
        // map operation), so a poisoned lock is taken over.
        self.shards[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached value of `key`, or a ticket to fill it with.
    pub fn get(&self, key: &K) -> Lookup<V> {
        let mut shard = self.shard(key);
        if let Some(Slot::Ready { value, .. }) = shard.slots.get(key) {
            return Lookup::Hit(value.clone());
        }
        drop(shard);
        Lookup::Miss(self.ticket(key))
    }

    /// A ticket to read `key` again, whatever the cache holds for it now.
    pub fn ticket(&self, key: &K) -> Ticket {
        let ticket = Ticket(self.tickets.fetch_add(1, Ordering::Relaxed));
        self.shard(key).put(key.clone(), Slot::Filling(ticket), SLOT_OVERHEAD, self.budget_per_shard);
        ticket
    }

    /// Keeps `value` for `key` if the read that got it, started with `ticket`, is still the
    /// latest one and nothing invalidated `key` since it started. `weight` is its size in
    /// bytes, about.
    pub fn fill(&self, key: &K, ticket: Ticket, value: V, weight: usize) {
        let mut shard = self.shard(key);
        if matches!(shard.slots.peek(key), Some(Slot::Filling(t)) if *t == ticket) {
            shard.put(key.clone(), Slot::Ready { value, weight }, weight + SLOT_OVERHEAD, self.budget_per_shard);
        }
    }

    /// Drops `key`'s entry, or a read of it in flight.
    pub fn forget<Q: Hash + Eq + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        let mut shard = self.shard(key);
        if let Some(slot) = shard.slots.pop(key) {
            shard.release(&slot);
        }
    }

    /// Drops everything, reads in flight included.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            shard.slots.clear();
            shard.bytes = 0;
            shard.ready = 0;
        }
    }

    /// The entries held (filled ones only) and the bytes they are counted for.
    pub fn size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(entries, bytes), shard| {
            let shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (entries + shard.ready, bytes + shard.bytes)
        })
    }
}

impl<V> Slot<V> {
    fn cost(&self) -> usize {
        match self {
            Slot::Filling(_) => SLOT_OVERHEAD,
            Slot::Ready { weight, .. } => weight + SLOT_OVERHEAD,
        }
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Puts `slot` under `key`, then evicts the least recently used slots over `budget`.
    fn put(&mut self, key: K, slot: Slot<V>, cost: usize, budget: usize) {
        debug_assert_eq!(slot.cost(), cost);
        self.bytes += cost;
        self.ready += usize::from(matches!(slot, Slot::Ready { .. }));
        if let Some(old) = self.slots.put(key, slot) {
            self.release(&old);
        }
        while self.bytes > budget {
            match self.slots.pop_lru() {
                Some((_, evicted)) => self.release(&evicted),
                None => break,
            }
        }
    }

    /// Takes what `slot`, just removed, was counted for.
    fn release(&mut self, slot: &Slot<V>) {
        self.bytes -= slot.cost();
        self.ready -= usize::from(matches!(slot, Slot::Ready { .. }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(budget: usize) -> Cache<String, u32> {
        Cache::new(NonZeroUsize::new(budget).unwrap())
    }

    fn hit(cache: &Cache<String, u32>, key: &str) -> Option<u32> {
        match cache.get(&key.to_owned()) {
            Lookup::Hit(v) => Some(v),
            Lookup::Miss(_) => None,
        }
    }

    fn ticket(cache: &Cache<String, u32>, key: &str) -> Ticket {
        match cache.get(&key.to_owned()) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(_) => panic!("{key} is cached"),
        }
    }

    #[test]
    fn a_read_fills_its_slot_and_later_reads_hit() {
        let cache = cache(1 << 20);
        let t = ticket(&cache, "k");
        cache.fill(&"k".into(), t, 7, 10);
        assert_eq!(hit(&cache, "k"), Some(7));
        assert_eq!(cache.size().0, 1);
    }

    #[test]
    fn an_invalidation_during_a_read_keeps_its_reply_out() {
        let cache = cache(1 << 20);
        let t = ticket(&cache, "k");
        cache.forget("k");
        cache.fill(&"k".into(), t, 7, 10);
        assert_eq!(hit(&cache, "k"), None);

        let t = ticket(&cache, "k");
        cache.clear();
        cache.fill(&"k".into(), t, 7, 10);
        assert_eq!(hit(&cache, "k"), None);
    }

    #[test]
    fn only_the_latest_read_of_a_key_may_fill_it() {
        let cache = cache(1 << 20);
        let first = ticket(&cache, "k");
        cache.forget("k");
        let second = ticket(&cache, "k");
        cache.fill(&"k".into(), first, 1, 10);
        assert_eq!(hit(&cache, "k"), None, "the first read may have missed the invalidation");
        let third = ticket(&cache, "k");
        cache.fill(&"k".into(), second, 2, 10);
        cache.fill(&"k".into(), third, 3, 10);
        assert_eq!(hit(&cache, "k"), Some(3));
    }

    #[test]
    fn the_least_recently_used_entries_go_when_over_budget() {
        let cache = cache(SHARDS * 4 * (SLOT_OVERHEAD + 100));
        for n in 0..1000 {
            let key = format!("k{n}");
            let t = ticket(&cache, &key);
            cache.fill(&key, t, n, 100);
        }
        let held = cache.size().0;
        assert!((SHARDS..=SHARDS * 4).contains(&held), "{held} entries held");
        assert_eq!(hit(&cache, "k999"), Some(999), "the latest entry stays");
    }
}
