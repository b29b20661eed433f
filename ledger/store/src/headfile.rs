//! A record of the last durable head, kept outside the storage engine.
//!
//! sled recovers from a damaged log by stopping at the damage, as it would at a torn write: the
//! store then opens at an older head, and blocks that were acknowledged vanish without an error.
//! This file remembers the newest head that `append` acknowledged, so that opening the store
//! notices such a loss and reports it instead of serving an older ledger as if it were whole.
//!
//! Two 64-byte slots, written alternately: magic `SHD1`, sequence `u64`, height `u64`, tree size
//! `u64`, header hash (32), then the first 4 bytes of blake3 over the preceding 60. The valid
//! slot with the higher sequence wins, so a write torn by a crash leaves the previous record.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use surplus_ledger::Hash;

const MAGIC: &[u8; 4] = b"SHD1";
const SLOT: usize = 64;

/// The head a store acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durable {
    /// Height of the head block.
    pub height: u64,
    /// Entries in the ledger at that head.
    pub tree_size: u64,
    /// Its header hash.
    pub hash: Hash,
}

/// The open head file.
#[derive(Debug)]
pub struct HeadFile {
    path: PathBuf,
    file: File,
    seq: u64,
    /// The height of the newest record, read or written.
    height: Option<u64>,
    /// The file held no record when opened (it may have just been created): its directory entry
    /// is synced with the first record, or a crash could lose the file while the engine keeps
    /// the blocks it acknowledges, and the store would no longer open.
    entry_unsynced: bool,
}

fn encode(seq: u64, d: &Durable) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[..4].copy_from_slice(MAGIC);
    b[4..12].copy_from_slice(&seq.to_be_bytes());
    b[12..20].copy_from_slice(&d.height.to_be_bytes());
    b[20..28].copy_from_slice(&d.tree_size.to_be_bytes());
    b[28..60].copy_from_slice(&d.hash);
    let check = blake3::hash(&b[..60]);
    b[60..].copy_from_slice(&check.as_bytes()[..4]);
    b
}

fn decode(b: &[u8]) -> Option<(u64, Durable)> {
    if b.len() != SLOT || &b[..4] != MAGIC || blake3::hash(&b[..60]).as_bytes()[..4] != b[60..] {
        return None;
    }
    let u = |r: std::ops::Range<usize>| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[r]);
        u64::from_be_bytes(a)
    };
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[28..60]);
    Some((u(4..12), Durable { height: u(12..20), tree_size: u(20..28), hash }))
}

impl HeadFile {
    /// Opens (or creates) the head file at `path` and reads the newest valid record.
    /// `Err` carries a reason when the file exists but holds no valid record.
    pub fn open(path: &Path) -> std::io::Result<(Self, Result<Option<Durable>, String>)> {
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let slots: Vec<(u64, Durable)> = bytes.chunks(SLOT).filter_map(decode).collect();
        let newest = slots.iter().max_by_key(|(seq, _)| *seq).copied();
        let record = match newest {
            Some((_, d)) => Ok(Some(d)),
            None if bytes.is_empty() => Ok(None),
            None => Err(format!("{} holds no valid head record", path.display())),
        };
        let seq = newest.map_or(0, |(s, _)| s);
        let height = newest.map(|(_, d)| d.height);
        let entry_unsynced = bytes.is_empty();
        Ok((Self { path: path.to_path_buf(), file, seq, height, entry_unsynced }, record))
    }

    /// Durably records `d` as the acknowledged head.
    pub fn write(&mut self, d: &Durable) -> std::io::Result<()> {
        let seq = self.seq + 1;
        let offset = (seq % 2) * SLOT as u64;
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(&encode(seq, d))?;
        self.file.sync_data()?;
        if self.entry_unsynced {
            sync_parent(&self.path)?;
            self.entry_unsynced = false;
        }
        self.seq = seq;
        self.height = Some(d.height);
        Ok(())
    }

    /// Records `d` unless the file already holds a higher head: writers that made their
    /// blocks durable in parallel may get here out of order.
    pub fn write_newer(&mut self, d: &Durable) -> std::io::Result<()> {
        if self.height.is_some_and(|h| h > d.height) {
            return Ok(());
        }
        self.write(d)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Syncs the directory holding `path`, so that its entry survives a crash.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        // A bare file name lives in the working directory.
        _ => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head");
        let (mut f, r) = HeadFile::open(&path).unwrap();
        assert_eq!(r, Ok(None));
        assert!(f.entry_unsynced, "a new file's directory entry is synced with its first record");
        let a = Durable { height: 1, tree_size: 10, hash: [1; 32] };
        let b = Durable { height: 2, tree_size: 20, hash: [2; 32] };
        f.write(&a).unwrap();
        assert!(!f.entry_unsynced);
        f.write(&b).unwrap();
        drop(f);
        assert!(!HeadFile::open(&path).unwrap().0.entry_unsynced);
        assert_eq!(HeadFile::open(&path).unwrap().1, Ok(Some(b)));
        // Tear the newer slot (seq 2 lives in slot 0): the older record remains.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (mut f, r) = HeadFile::open(&path).unwrap();
        assert_eq!(r, Ok(Some(a)));
        f.write(&b).unwrap();
        assert_eq!(HeadFile::open(&path).unwrap().1, Ok(Some(b)));
        // An older head never replaces a newer one.
        let (mut f, _) = HeadFile::open(&path).unwrap();
        f.write_newer(&a).unwrap();
        assert_eq!(HeadFile::open(&path).unwrap().1, Ok(Some(b)));
        std::fs::write(&path, [7u8; 128]).unwrap();
        assert!(HeadFile::open(&path).unwrap().1.is_err());
    }
}
