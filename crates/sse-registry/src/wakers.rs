//! The wakers of the streams that wait for a frame, kept by slot outside the state's lock, in
//! shards: a stream registers its waker, and a wake-up takes it, under the lock of its shard
//! only, so that neither waits for the state's lock nor for each other across shards.

use std::ops::Range;
use std::task::Waker;

use crate::lock::Lock;
use crate::state::StreamKey;

/// How many shards. Slot `s` is in shard `s % SHARDS`, at index `s / SHARDS`, so that a
/// broadcast's wake-up of a range of slots takes each shard's lock once a slice. 16 keeps two
/// threads registering at once on different shards nearly always, for 16 lock acquisitions a
/// [`DEFAULT_SLICE`](crate::DEFAULT_SLICE) of a broadcast.
const SHARDS: usize = 16;

/// A waiting stream's waker.
struct Entry {
    generation: u64,
    waker: Waker,
}

pub(crate) struct Wakers {
    shards: [Lock<Vec<Option<Entry>>>; SHARDS],
}

impl Default for Wakers {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Lock::new(Vec::new())),
        }
    }
}

impl Wakers {
    /// Registers `waker` as the one to wake for `stream`. A waker of an older stream of the
    /// slot (replaced, or of a client since removed) that it displaces is woken, so that its
    /// reader sees the end.
    pub(crate) fn register(&self, stream: StreamKey, waker: &Waker) {
        let (shard, index) = (stream.slot() % SHARDS, stream.slot() / SHARDS);
        let displaced = {
            let mut entries = self.shards[shard].lock();
            if entries.len() <= index {
                entries.resize_with(index + 1, || None);
            }
            let entry = &mut entries[index];
            match entry {
                Some(e) if e.generation == stream.generation() => {
                    if !e.waker.will_wake(waker) {
                        e.waker.clone_from(waker);
                    }
                    None
                }
                _ => entry
                    .replace(Entry {
                        generation: stream.generation(),
                        waker: waker.clone(),
                    })
                    .filter(|old| old.generation != stream.generation()),
            }
        };
        if let Some(old) = displaced {
            old.waker.wake();
        }
    }

    /// Forgets the waker of `stream`, which has ended, if it is the one registered.
    pub(crate) fn clear(&self, stream: StreamKey) {
        let (shard, index) = (stream.slot() % SHARDS, stream.slot() / SHARDS);
        let taken = {
            let mut entries = self.shards[shard].lock();
            match entries.get_mut(index) {
                Some(entry)
                    if entry
                        .as_ref()
                        .is_some_and(|e| e.generation == stream.generation()) =>
                {
                    entry.take()
                }
                _ => None,
            }
        };
        drop(taken); // outside the lock: dropping a waker may run its task's code
    }

    /// Takes the waker registered at each stream's slot (whatever its generation: waking a
    /// newer stream is only a spurious wake-up) into `out`.
    pub(crate) fn take(&self, streams: &[StreamKey], out: &mut Vec<Waker>) {
        for stream in streams {
            let (shard, index) = (stream.slot() % SHARDS, stream.slot() / SHARDS);
            if let Some(entry) = self.shards[shard]
                .lock()
                .get_mut(index)
                .and_then(Option::take)
            {
                out.push(entry.waker);
            }
        }
    }

    /// Takes every waker registered at a slot in `slots` into `out`, taking each shard's lock
    /// once.
    pub(crate) fn take_range(&self, slots: Range<usize>, out: &mut Vec<Waker>) {
        if slots.is_empty() {
            return;
        }
        for (shard, entries) in self.shards.iter().enumerate() {
            // The indexes in this shard of the slots in the range.
            let first = (slots.start + SHARDS - 1 - shard) / SHARDS;
            let end = (slots.end + SHARDS - 1 - shard) / SHARDS;
            let mut entries = entries.lock();
            let end = end.min(entries.len());
            if first < end {
                out.extend(
                    entries[first..end]
                        .iter_mut()
                        .filter_map(|e| e.take())
                        .map(|e| e.waker),
                );
            }
        }
    }

    /// Acquisitions of the shards' locks and the time they were held, summed.
    #[cfg(feature = "lock-stats")]
    pub(crate) fn lock_stats(&self) -> (u64, std::time::Duration) {
        self.shards
            .iter()
            .fold((0, std::time::Duration::ZERO), |(n, t), s| {
                let stats = s.stats();
                (n + stats.acquisitions, t + stats.held)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `take_range` takes exactly the registered slots in the range, whatever the range's
    /// alignment to the shards.
    #[test]
    fn take_range_takes_exactly_the_range() {
        use std::sync::Arc;
        use std::task::Wake;
        struct Nothing;
        impl Wake for Nothing {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Nothing));
        for (start, end) in [
            (0, 0),
            (0, 1),
            (3, 40),
            (15, 17),
            (16, 32),
            (5, 100),
            (99, 100),
        ] {
            let wakers = Wakers::default();
            for slot in 0..100 {
                wakers.register(StreamKey::new(slot, 1), &waker);
            }
            let mut out = Vec::new();
            wakers.take_range(start..end, &mut out);
            assert_eq!(out.len(), end - start, "{start}..{end}");
            // What is left is everything outside the range.
            out.clear();
            wakers.take_range(0..100, &mut out);
            assert_eq!(out.len(), 100 - (end - start), "{start}..{end}");
        }
    }
}
