//! Sweeping: [`Hub::sweep`] and [`Hub::clear`], and [`Sweep`], stepped a slice at a time.

use std::time::Instant;

use crate::hub::Hub;
use crate::state::{StreamKey, SweepCursor};
use crate::work::{Progress, Slice};

impl Hub {
    /// A stale sweep as of `now`, to be stepped: it removes clients whose stream ended more than
    /// [`Config::grace`](crate::Config::grace) ago, and issued ids that never attached within
    /// [`Config::unattached_ttl`](crate::Config::unattached_ttl). A client whose stream was dropped after the latest `now` the
    /// hub had been given is not judged: it is stamped with `now`, and its grace period starts
    /// then (see [Time](Self#time)).
    pub fn sweep(&self, now: Instant) -> Sweep {
        let cursor = self.lock().sweep(now);
        Sweep::new(self.clone(), cursor)
    }

    /// A sweep that removes every client, attached or not, to be stepped.
    pub fn clear(&self) -> Sweep {
        let cursor = self.lock().clear();
        Sweep::new(self.clone(), cursor)
    }
}

/// A sweep in progress ([`Hub::sweep`], [`Hub::clear`]), stepped as a [`Slice`].
///
/// A step's budget counts a client visited as 1 and a client removed as 16 (removals are that
/// much dearer): a step of [`DEFAULT_SLICE`](crate::DEFAULT_SLICE) scans 4,096 clients, or
/// removes 256, in about the same time. A step stops before a removal that would exceed its
/// budget, but always does some work: with a budget under 16, it removes at most one client.
#[derive(Debug)]
pub struct Sweep {
    hub: Hub,
    cursor: SweepCursor,
    /// The streams of removed clients, to wake (reused between steps).
    ended: Vec<StreamKey>,
}

impl Sweep {
    fn new(hub: Hub, cursor: SweepCursor) -> Self {
        Self {
            hub,
            cursor,
            ended: Vec::new(),
        }
    }

    /// Clients removed so far.
    pub fn removed(&self) -> usize {
        self.cursor.removed()
    }
}

impl Slice for Sweep {
    fn step(&mut self, budget: usize) -> Progress {
        let progress = {
            let mut state = self.hub.lock();
            let removed = self.cursor.removed();
            let progress = state.sweep_step(&mut self.cursor, budget, &mut self.ended);
            if self.cursor.removed() != removed {
                self.hub.changed();
            }
            progress
        };
        self.hub.wake(&mut self.ended);
        progress
    }
}
