//! The hub's limits and timings.

use std::time::Duration;

/// Limits and timings of a [`Hub`](crate::Hub). Every limit bounds memory that clients could
/// otherwise grow; the defaults suit a server with up to a few hundred thousand clients.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Most clients the hub knows at once; [`Hub::issue`](crate::Hub::issue) refuses more.
    /// Default: 1,000,000.
    pub max_clients: usize,
    /// Most frames addressed to one client (directly or by its name) that the hub keeps for it,
    /// delivered or not. Delivered ones are kept while there is room so that a reconnecting client
    /// can have them replayed. When the undelivered ones alone fill it, the client is a slow
    /// consumer: see [`Hub`](crate::Hub) for the policy. Default: 64.
    pub queue_capacity: usize,
    /// Most broadcast and key frames kept for delivery and replay. Default: 4096.
    pub history_len: usize,
    /// Most bytes of broadcast and key frames kept. Default: 16 MiB.
    pub history_bytes: usize,
    /// Most keys one client may subscribe to. Default: 64.
    pub max_keys_per_client: usize,
    /// Most clients sharing one name (the tabs of one user, say): [`Hub::issue`](crate::Hub::issue)
    /// and [`Hub::import`](crate::Hub::import) refuse another client with that name
    /// ([`Error::NameFull`](crate::Error::NameFull)) while the name has this many. It bounds the
    /// work a publish to a name ([`Target::Name`](crate::Target::Name)) does under the hub's lock,
    /// which fills every member's queue in one pass, and keeps a peer that may choose names from
    /// piling clients onto one. Clients without a name are not counted. Default: 64.
    pub max_name_members: usize,
    /// How long a client that has attached is kept after its stream ends, waiting for it to
    /// reconnect, before a sweep forgets it. It counts from no earlier than the end: for a
    /// dropped stream, from the first `now` the hub is given after the drop (see
    /// [`Hub`](crate::Hub#time)), so a client may be kept up to about one sweep interval longer.
    /// Default: 60 s.
    pub grace: Duration,
    /// How long an issued id that never attached is kept before a sweep forgets it. Default: 60 s.
    pub unattached_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_clients: 1_000_000,
            queue_capacity: 64,
            history_len: 4096,
            history_bytes: 16 << 20,
            max_keys_per_client: 64,
            max_name_members: 64,
            grace: Duration::from_secs(60),
            unattached_ttl: Duration::from_secs(60),
        }
    }
}
