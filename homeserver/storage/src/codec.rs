//! The one key encoding used by every table, and value codecs.
//!
//! # Key format
//!
//! A key is the concatenation of its parts. Every part except the last is
//! written in a self-delimiting "non-final" form, so that the encoding of
//! the leading parts of a tuple is a byte prefix of every key that starts
//! with them, and no other key:
//!
//! | type      | final part        | non-final part                          |
//! |-----------|-------------------|-----------------------------------------|
//! | `String`  | UTF-8 bytes       | UTF-8 bytes, then `0xFF`                |
//! | `u64`     | 8 bytes big-endian| 8 bytes big-endian                      |
//! | `Vec<u8>` | raw bytes         | each `0xFF` as `0xFF 0x00`, then `0xFF 0xFF` |
//!
//! `0xFF` never occurs in UTF-8, so it can end a string part unambiguously:
//! `("ab", "c")` is `61 62 FF 63` and `("a", "bc")` is `61 FF 62 63`, and
//! the prefix for `"a"` (`61 FF`) matches only the latter. Big-endian `u64`
//! makes byte order equal numeric order. Arbitrary bytes can contain `0xFF`,
//! hence the escaping for non-final `Vec<u8>` parts.
//!
//! Ordering: keys sharing leading parts sort by their next part. Across
//! different leading strings the order is byte order of the *terminated*
//! string, which differs from plain string order only when one string is a
//! prefix of the other (`("a", …)` sorts after `("ab", …)`); the same holds
//! for escaped byte parts. Tables that need a particular order across first
//! parts must not depend on that case.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Ends a non-final string part.
const STRING_TERMINATOR: u8 = 0xFF;

/// A type that can be (part of) a table key.
pub trait KeyCodec: Sized {
    /// Encodes `self` as the last (or only) part of a key.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Decodes a complete key, i.e. `self` as the last part, consuming all
    /// of `bytes`.
    fn decode_key(bytes: &[u8]) -> Result<Self>;

    /// Encodes `self` in self-delimiting form, followed by more parts.
    fn encode_part(&self, out: &mut Vec<u8>);

    /// Decodes a self-delimiting part and returns it with the remaining bytes.
    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])>;
}

/// Encodes a complete key.
pub fn encode_key<K: KeyCodec>(key: &K) -> Vec<u8> {
    let mut out = Vec::new();
    key.encode_key(&mut out);
    out
}

/// Encodes `prefix` as leading, non-final part(s): the byte prefix shared by
/// exactly the keys whose first part(s) equal `prefix`. For a key
/// `(String, u64)`, `prefix_of(&user)` selects all of one user's entries.
pub fn prefix_of<P: KeyCodec>(prefix: &P) -> Vec<u8> {
    let mut out = Vec::new();
    prefix.encode_part(&mut out);
    out
}

impl KeyCodec for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode_key(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::Corrupt(format!("key part is not UTF-8: {e}")))
    }

    fn encode_part(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
        out.push(STRING_TERMINATOR);
    }

    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let end = bytes
            .iter()
            .position(|&b| b == STRING_TERMINATOR)
            .ok_or_else(|| Error::Corrupt("string key part has no terminator".to_owned()))?;
        Ok((Self::decode_key(&bytes[..end])?, &bytes[end + 1..]))
    }
}

impl KeyCodec for u64 {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn decode_key(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 8] = bytes.try_into().map_err(|_| {
            Error::Corrupt(format!("u64 key part has {} bytes, not 8", bytes.len()))
        })?;
        Ok(u64::from_be_bytes(array))
    }

    fn encode_part(&self, out: &mut Vec<u8>) {
        self.encode_key(out);
    }

    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])> {
        if bytes.len() < 8 {
            return Err(Error::Corrupt(format!(
                "u64 key part truncated to {} bytes",
                bytes.len()
            )));
        }
        let (head, rest) = bytes.split_at(8);
        Ok((Self::decode_key(head)?, rest))
    }
}

impl KeyCodec for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode_key(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }

    fn encode_part(&self, out: &mut Vec<u8>) {
        for &b in self {
            out.push(b);
            if b == 0xFF {
                out.push(0x00);
            }
        }
        out.extend_from_slice(&[0xFF, 0xFF]);
    }

    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let mut value = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (0xFF, Some(0xFF)) => return Ok((value, &bytes[i + 2..])),
                (0xFF, Some(0x00)) => {
                    value.push(0xFF);
                    i += 2;
                }
                (0xFF, _) => break,
                (b, _) => {
                    value.push(b);
                    i += 1;
                }
            }
        }
        Err(Error::Corrupt("malformed bytes key part".to_owned()))
    }
}

impl<A: KeyCodec, B: KeyCodec> KeyCodec for (A, B) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_part(out);
        self.1.encode_key(out);
    }

    fn decode_key(bytes: &[u8]) -> Result<Self> {
        let (a, rest) = A::decode_part(bytes)?;
        Ok((a, B::decode_key(rest)?))
    }

    fn encode_part(&self, out: &mut Vec<u8>) {
        self.0.encode_part(out);
        self.1.encode_part(out);
    }

    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let (a, rest) = A::decode_part(bytes)?;
        let (b, rest) = B::decode_part(rest)?;
        Ok(((a, b), rest))
    }
}

impl<A: KeyCodec, B: KeyCodec, C: KeyCodec> KeyCodec for (A, B, C) {
    fn encode_key(&self, out: &mut Vec<u8>) {
        self.0.encode_part(out);
        self.1.encode_part(out);
        self.2.encode_key(out);
    }

    fn decode_key(bytes: &[u8]) -> Result<Self> {
        let (a, rest) = A::decode_part(bytes)?;
        let (b, rest) = B::decode_part(rest)?;
        Ok((a, b, C::decode_key(rest)?))
    }

    fn encode_part(&self, out: &mut Vec<u8>) {
        self.0.encode_part(out);
        self.1.encode_part(out);
        self.2.encode_part(out);
    }

    fn decode_part(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let (a, rest) = A::decode_part(bytes)?;
        let (b, rest) = B::decode_part(rest)?;
        let (c, rest) = C::decode_part(rest)?;
        Ok(((a, b, c), rest))
    }
}

/// How values of type `V` are stored. Implemented by marker types so that a
/// table picks its format in its type: `Table<K, V>` is JSON (the default),
/// `Table<K, Vec<u8>, Raw>` stores bytes as they are.
pub trait ValueCodec<V> {
    fn encode_value(value: &V) -> Result<Vec<u8>>;
    fn decode_value(bytes: &[u8]) -> Result<V>;
}

/// Values as JSON via serde: readable in debugging tools and tolerant of
/// added optional fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<V: Serialize + DeserializeOwned> ValueCodec<V> for Json {
    fn encode_value(value: &V) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::Encode(e.to_string()))
    }

    fn decode_value(bytes: &[u8]) -> Result<V> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("invalid JSON value: {e}")))
    }
}

/// Values without framing: `Vec<u8>` as is, `u64` as 8 big-endian bytes,
/// `String` as UTF-8, `()` as nothing (for set-like tables).
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl ValueCodec<Vec<u8>> for Raw {
    fn encode_value(value: &Vec<u8>) -> Result<Vec<u8>> {
        Ok(value.clone())
    }

    fn decode_value(bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

impl ValueCodec<u64> for Raw {
    fn encode_value(value: &u64) -> Result<Vec<u8>> {
        Ok(value.to_be_bytes().to_vec())
    }

    fn decode_value(bytes: &[u8]) -> Result<u64> {
        u64::decode_key(bytes)
    }
}

impl ValueCodec<String> for Raw {
    fn encode_value(value: &String) -> Result<Vec<u8>> {
        Ok(value.as_bytes().to_vec())
    }

    fn decode_value(bytes: &[u8]) -> Result<String> {
        String::decode_key(bytes)
    }
}

impl ValueCodec<()> for Raw {
    fn encode_value(_: &()) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn decode_value(_: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Zero-sized stand-in that ties a codec to a value type without owning either.
pub(crate) type CodecMarker<K, V, C> = PhantomData<fn() -> (K, V, C)>;
