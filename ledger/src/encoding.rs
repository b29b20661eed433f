//! The canonical byte encoding: big-endian integers, length-prefixed byte strings, and a
//! domain tag in front of everything that is hashed or signed. `docs/ledger-format.md` is the
//! normative description; this module is the one implementation of it.

use crate::Hash;

/// Domain tags. Each hashed or signed message starts with `len(tag) as u8 || tag`; the Merkle
/// tree instead uses RFC 9162's one-byte prefixes 0x00 and 0x01, which no tag can start with
/// because every tag is longer than one byte.
pub mod domain {
    /// Block header hash.
    pub const HEADER: &[u8] = b"surplus/header/v1";
    /// Bytes an entry's author signs.
    pub const ENTRY_SIG: &[u8] = b"surplus/entry/v1";
    /// Entry identifier (for example an order id).
    pub const ENTRY_ID: &[u8] = b"surplus/entry-id/v1";
    /// Bytes a checkpoint signer signs.
    pub const CHECKPOINT: &[u8] = b"surplus/checkpoint/v1";
    /// Bytes a validator signs in a consensus vote.
    pub const VOTE: &[u8] = b"surplus/vote/v1";
    /// Seed of the deterministic coefficients of certificate batch verification.
    pub const BATCH_SEED: &[u8] = b"surplus/batch-seed/v1";
}

/// Longest chain id, in bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// Starts a blake3 hash of a tagged message.
pub fn tagged_hasher(tag: &[u8]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    // Tags are compile-time constants shorter than 256 bytes.
    h.update(&[tag.len() as u8]);
    h.update(tag);
    h
}

/// blake3 of `tag` followed by `body`.
pub fn tagged_hash(tag: &[u8], body: &[u8]) -> Hash {
    let mut h = tagged_hasher(tag);
    h.update(body);
    *h.finalize().as_bytes()
}

/// Appends canonical fields to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }
    /// Starts the message with a domain tag.
    pub fn tag(&mut self, tag: &[u8]) -> &mut Self {
        self.u8(tag.len() as u8);
        self.raw(tag)
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Two bytes, big-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Four bytes, big-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Eight bytes, big-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Bytes as they are, with no length (fixed-size fields).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// A byte string of at most 255 bytes behind a one-byte length.
    ///
    /// Callers check the length first; a longer value is a bug, and is cut to keep the
    /// encoding well-formed rather than panic.
    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(v.len() <= u8::MAX as usize);
        let v = &v[..v.len().min(u8::MAX as usize)];
        self.u8(v.len() as u8);
        self.raw(v)
    }
    /// A byte string behind a four-byte length.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        debug_assert!(v.len() <= u32::MAX as usize);
        self.u32(v.len() as u32);
        self.raw(v)
    }
    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    /// The finished encoding.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Why a byte string could not be decoded. `at` is the offset in the decoded buffer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated: {field} needs {needed} bytes at offset {at}, {available} left")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Offset of the field.
        at: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field} at offset {at}: {reason}")]
    Invalid {
        /// Field being read.
        field: &'static str,
        /// Offset of the field.
        at: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes were left over after a complete value.
    #[error("{count} trailing bytes after the value at offset {at}")]
    Trailing {
        /// Offset of the first extra byte.
        at: usize,
        /// How many extra bytes.
        count: usize,
    },
}

/// Reads canonical fields from a byte slice, never panicking on short or hostile input.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// Offset of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// The next byte, without reading it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }
    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Trailing { at: self.pos, count: self.remaining() })
        }
    }
    /// `n` bytes as they are.
    pub fn raw(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                field,
                at: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.raw(field, N)?);
        Ok(out)
    }
    /// One byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    /// Big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// Big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    /// A byte string behind a one-byte length.
    pub fn short_bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u8(field)? as usize;
        self.raw(field, n)
    }
    /// A byte string behind a four-byte length, refused above `max` bytes before anything is
    /// allocated.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let n = self.u32(field)? as usize;
        if n > max {
            return Err(self.invalid_at(field, at, format!("length {n} exceeds the limit {max}")));
        }
        self.raw(field, n)
    }
    /// An `Invalid` error for a field that started at `at`.
    pub fn invalid_at(&self, field: &'static str, at: usize, reason: String) -> DecodeError {
        DecodeError::Invalid { field, at, reason }
    }
}
