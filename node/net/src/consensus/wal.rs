//! A read-only check of the consensus engine's write-ahead log before the engine opens it.
//!
//! Malachite's WAL (`DATA_DIR/consensus/wal`) holds what this validator proposed, voted and
//! timed out in the height in progress, so that after a crash it replays them and never signs
//! a conflicting vote. The engine opens it without naming it in its errors: a damaged file gave
//! the engine's panic text, and a deleted one started silently. This check reads the file first,
//! in the engine's format (Malachite 0.8.2, `arc-malachitebft-wal`, version 1):
//!
//! ```text
//! header: version u32 BE (= 1), sequence u64 BE
//! entry:  compressed u8 (0: this build writes and reads only uncompressed entries),
//!         length u64 BE, crc32 u32 BE (of the data), data (length bytes)
//! ```
//!
//! - A file shorter than its header, with another version, a compressed entry or an entry whose
//!   data does not match its CRC is [`Damaged`]: the node refuses to start on it and says what
//!   to do ([`Damaged::advice`]).
//! - An incomplete last entry (a write cut short by a crash) is what the engine drops when it
//!   opens the file: reported, not refused.
//! - A missing file where the node has committed blocks is reported: the engine starts a new
//!   one, without the votes of the height in progress.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes of the header: version and sequence.
const HEADER: u64 = 12;
/// Bytes of an entry before its data: the compression flag, the length and the CRC.
const ENTRY_HEADER: u64 = 13;
/// The only WAL version the engine knows.
const VERSION: u32 = 1;

/// What the check found in a WAL the engine can open.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// No file: the engine creates one.
    Missing,
    /// A whole header and `entries` whole entries, then `torn` bytes of an incomplete last
    /// entry (0 normally) that the engine drops.
    Readable {
        /// Whole entries.
        entries: u64,
        /// Bytes of an incomplete entry at the end.
        torn: u64,
    },
}

/// A WAL the engine must not open.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
    /// The byte offset of the damage.
    pub offset: u64,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the consensus WAL {} is damaged: {} (at byte {})",
            self.path.display(),
            self.what,
            self.offset
        )
    }
}

impl std::error::Error for Damaged {}

impl Damaged {
    /// What the operator should do, for a node whose ledger head is `head` (the WAL is about
    /// height `head + 1`).
    pub fn advice(&self, head: u64) -> String {
        let path = self.path.display();
        format!(
            "The node does not start on it: the WAL holds this validator's votes of height {h}, \
             and a validator that forgot them could sign conflicting ones. Wait until another \
             node's head is past height {h} (`surplus status --node URL`), then move the file \
             aside (`mv {path} {path}.damaged`) and start the node again: it catches up from \
             its peers and votes from the next height on. Keep the damaged file for diagnosis.",
            h = head + 1,
        )
    }
}

/// Reads the WAL at `path` (read-only). I/O errors other than a missing file are errors.
pub fn check(path: &Path) -> std::io::Result<Result<Found, Damaged>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(Found::Missing)),
        Err(e) => return Err(e),
    };
    let size = file.get_ref().metadata()?.len();
    let damaged =
        |what: String, offset: u64| Ok(Err(Damaged { path: path.to_owned(), what, offset }));
    if size == 0 {
        // The engine writes the header into an empty file.
        return Ok(Ok(Found::Readable { entries: 0, torn: 0 }));
    }
    if size < HEADER {
        return damaged(format!("{size} bytes, shorter than its {HEADER}-byte header"), 0);
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header)?;
    let version = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if version != VERSION {
        return damaged(format!("version {version}, where the engine knows only {VERSION}"), 0);
    }
    let (mut pos, mut entries) = (HEADER, 0u64);
    let mut data = Vec::new();
    while size - pos >= ENTRY_HEADER {
        let mut head = [0u8; ENTRY_HEADER as usize];
        file.read_exact(&mut head)?;
        let compressed = head[0];
        let length = u64::from_be_bytes(head[1..9].try_into().unwrap_or_default());
        let crc = u32::from_be_bytes(head[9..13].try_into().unwrap_or_default());
        if length > size - pos - ENTRY_HEADER {
            // An incomplete last entry, as a crash during a write leaves (the engine drops it).
            break;
        }
        if compressed != 0 {
            return damaged(
                format!(
                    "entry {entries} is marked compressed ({compressed}); this build writes none"
                ),
                pos,
            );
        }
        data.resize(length as usize, 0);
        file.read_exact(&mut data)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&data);
        if hasher.finalize() != crc {
            return damaged(format!("entry {entries} does not match its CRC"), pos);
        }
        pos += ENTRY_HEADER + length;
        entries += 1;
    }
    Ok(Ok(Found::Readable { entries, torn: size - pos }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(data);
        out.extend_from_slice(&h.finalize().to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn wal(entries: &[&[u8]]) -> Vec<u8> {
        let mut out = VERSION.to_be_bytes().to_vec();
        out.extend_from_slice(&7u64.to_be_bytes());
        for e in entries {
            out.extend(entry(e));
        }
        out
    }

    fn checked(bytes: &[u8]) -> Result<Found, Damaged> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        std::fs::write(&path, bytes).unwrap();
        check(&path).unwrap().map_err(|d| Damaged { path: PathBuf::from("wal"), ..d })
    }

    /// The engine's own writer makes a file the check reads whole.
    #[test]
    fn the_engines_own_file_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        {
            let mut log = arc_malachitebft_wal::Log::open(&path).unwrap();
            log.append(b"first").unwrap();
            log.append(vec![9u8; 5000]).unwrap();
            log.flush().unwrap();
        }
        assert_eq!(check(&path).unwrap(), Ok(Found::Readable { entries: 2, torn: 0 }));
        assert_eq!(check(&dir.path().join("none")).unwrap(), Ok(Found::Missing));
    }

    #[test]
    fn damage_is_found_with_its_place_and_a_torn_tail_is_not_damage() {
        let good = wal(&[b"one", b"two", b"three"]);
        assert_eq!(checked(&good), Ok(Found::Readable { entries: 3, torn: 0 }));
        assert_eq!(checked(&[]), Ok(Found::Readable { entries: 0, torn: 0 }));
        // A write cut short.
        assert_eq!(
            checked(&good[..good.len() - 2]),
            Ok(Found::Readable { entries: 2, torn: (ENTRY_HEADER + 5 - 2) })
        );
        // A bit flipped in the second entry's data.
        let mut flipped = good.clone();
        let second = (HEADER + ENTRY_HEADER + 3) as usize;
        flipped[second + ENTRY_HEADER as usize] ^= 0x10;
        let d = checked(&flipped).unwrap_err();
        assert_eq!((d.offset, d.what.as_str()), (second as u64, "entry 1 does not match its CRC"));
        assert!(d.to_string().contains("the consensus WAL wal is damaged"), "{d}");
        assert!(d.advice(41).contains("height 42") && d.advice(41).contains("mv wal wal.damaged"));
        // Short of its header, another version, a compressed entry.
        assert_eq!(checked(&good[..5]).unwrap_err().offset, 0);
        let mut v2 = good.clone();
        v2[3] = 2;
        assert!(checked(&v2).unwrap_err().what.starts_with("version 2"));
        let mut packed = good.clone();
        packed[HEADER as usize] = 1;
        assert!(checked(&packed).unwrap_err().what.contains("compressed"));
    }
}
