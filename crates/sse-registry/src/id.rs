//! Client ids: random, unguessable, and kept out of logs.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A client's id: a UUID v4 drawn from the operating system's CSPRNG.
///
/// The id is the client's only credential for its stream, its subscriptions and its tasks, so it
/// is a secret. `Display` writes it in full (the server must hand it to its client); `Debug`
/// writes only its [`tag`](Self::tag), so that `{:?}` in a log line names the client without
/// leaking any part of the id.
///
/// ```
/// use sse_registry::ClientId;
/// let id = ClientId::random();
/// let text = id.to_string();
/// assert_eq!(text.len(), 36);
/// assert_eq!(text.parse::<ClientId>().unwrap(), id);
/// assert_eq!(format!("{id:?}"), format!("ClientId({})", id.tag()));
/// assert!(!format!("{id:?}").contains(&text[..4]));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Uuid);

impl ClientId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// A short name of the client for logs: the first 32 bits of a hash of the id keyed with a
    /// secret drawn once per process. The same client has the same tag throughout the process,
    /// so log lines can be followed, but nothing of the id can be learnt from it (nor is it the
    /// same on another node, or after a restart).
    pub fn tag(&self) -> Tag {
        use std::hash::{BuildHasher, Hasher};
        static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let mut hasher = KEY.get_or_init(Default::default).build_hasher();
        hasher.write(self.as_bytes());
        // The high half: the low bits of SipHash are as good, but this reads as documented.
        Tag((hasher.finish() >> 32) as u32)
    }
}

/// A client's [tag](ClientId::tag): eight hex digits that name it in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u32);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.tag())
    }
}

/// The text was not a client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidClientId;

impl fmt::Display for InvalidClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a client id (expected a hyphenated UUID v4)")
    }
}

impl std::error::Error for InvalidClientId {}

impl FromStr for ClientId {
    type Err = InvalidClientId;

    /// Accepts only the hyphenated form the hub hands out, and only version 4.
    fn from_str(s: &str) -> Result<Self, InvalidClientId> {
        if s.len() != 36 {
            return Err(InvalidClientId);
        }
        let uuid = Uuid::try_parse(s).map_err(|_| InvalidClientId)?;
        if uuid.get_version() != Some(uuid::Version::Random) {
            return Err(InvalidClientId);
        }
        Ok(Self(uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_v4_and_round_trip() {
        let a = ClientId::random();
        let b = ClientId::random();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<ClientId>(), Ok(a));
        assert_eq!(a.0.get_version(), Some(uuid::Version::Random));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "not-an-id",
            "00000000-0000-0000-0000-000000000000", // nil, not v4
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8", // v1
            "{6ba7b810-9dad-41d1-80b4-00c04fd430c8}", // braced
            "6ba7b8109dad41d180b400c04fd430c8",     // simple form
        ] {
            assert_eq!(bad.parse::<ClientId>(), Err(InvalidClientId), "{bad}");
        }
    }

    #[test]
    fn a_tag_is_stable_and_shows_nothing_of_the_id() {
        let a = ClientId::random();
        assert_eq!(a.tag(), a.tag());
        let tag = a.tag().to_string();
        assert_eq!(tag.len(), 8);
        let hex = a.0.simple().to_string();
        // The tag is not a piece of the id (a 2^-32 chance each way, for a random id).
        assert!(!hex.contains(&tag), "{tag} in {hex}");
        let tags: std::collections::HashSet<Tag> =
            (0..1000).map(|_| ClientId::random().tag()).collect();
        assert!(tags.len() > 990, "tags spread: {}", tags.len());
    }
}
