//! Client ids: random, unguessable, and kept out of logs.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A client's id: a UUID v4 drawn from the operating system's CSPRNG.
///
/// The id is the client's only credential for its stream, its subscriptions and its tasks, so it
/// is a secret. `Display` writes it in full (the server must hand it to its client), but `Debug`
/// shows only its first eight hex digits, so that `{:?}` in a log line does not leak it.
///
/// ```
/// use sse_registry::ClientId;
/// let id = ClientId::random();
/// let text = id.to_string();
/// assert_eq!(text.len(), 36);
/// assert_eq!(text.parse::<ClientId>().unwrap(), id);
/// assert!(!format!("{id:?}").contains(&text));
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
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Uuid::encode_buffer();
        let text = self.0.simple().encode_lower(&mut buf);
        write!(f, "ClientId({}…)", &text[..8])
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
}
