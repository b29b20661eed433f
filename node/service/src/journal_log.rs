//! The journal's file (`DIR/journal.log`): an append-only log of checksummed records, so that
//! damage costs only the records it touches and is reported.
//!
//! A record is, big-endian: the marker byte `0xA5`; its kind (1 put, 2 remove); the key's
//! length (u16, at most [`MAX_KEY`]); the value's length (u32, at most [`MAX_VALUE`]; 0 for a
//! remove); the key; the value; and a CRC-32 (IEEE) of everything from the kind through the
//! value. Opening reads the file from the start and replays the records into a map. A record
//! whose marker, lengths or checksum is wrong is damaged: it is counted with its byte offset,
//! and reading goes on at the next offset where a whole valid record starts. Bytes at the end
//! too few for a record are a torn write. Whatever reads is kept. After damage, or when most of
//! the file is superseded records, the file is rewritten with the live entries (a temporary
//! file, fsync, rename), so a damaged file is not read again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The journal file's name in the data directory.
pub const FILE: &str = "journal.log";
/// First byte of every record.
const MARKER: u8 = 0xA5;
const PUT: u8 = 1;
const REMOVE: u8 = 2;
/// Marker, kind, key length, value length.
const HEAD: usize = 1 + 1 + 2 + 4;
/// Largest key, bytes.
pub const MAX_KEY: usize = 64;
/// Largest value, bytes (an entry is far smaller).
pub const MAX_VALUE: usize = 1 << 20;
/// Superseded records that trigger a rewrite, when they also outnumber the live ones.
const REWRITE_DEAD: usize = 10_000;

/// What opening the file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Entries read back.
    pub kept: usize,
    /// Byte offsets of damaged records (skipped).
    pub damaged: Vec<u64>,
    /// Offset of an incomplete last record (a write cut short), if any.
    pub torn_at: Option<u64>,
    /// Whether the file was rewritten with the live entries.
    pub rewritten: bool,
}

/// The journal's file and the live entries it holds.
pub struct LogDisk {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Records in the file that a later one superseded.
    dead: usize,
}

/// One record's bytes.
fn record(kind: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + key.len() + value.len() + 4);
    out.push(MARKER);
    out.push(kind);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[1..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A record read back.
struct Record<'a> {
    kind: u8,
    key: &'a [u8],
    value: &'a [u8],
    /// Its length in the file, bytes.
    len: usize,
}

/// The record at the start of `bytes`; `Err(true)` if `bytes` is too short to hold the record
/// its head announces, `Err(false)` if it is invalid.
fn parse(bytes: &[u8]) -> Result<Record<'_>, bool> {
    if bytes.len() < HEAD {
        return Err(true);
    }
    let kind = bytes[1];
    let key_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let value_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let valid_head = bytes[0] == MARKER
        && (kind == PUT || (kind == REMOVE && value_len == 0))
        && (1..=MAX_KEY).contains(&key_len)
        && value_len <= MAX_VALUE;
    if !valid_head {
        return Err(false);
    }
    let len = HEAD + key_len + value_len + 4;
    if bytes.len() < len {
        return Err(true);
    }
    let body = &bytes[1..len - 4];
    let crc = u32::from_be_bytes([bytes[len - 4], bytes[len - 3], bytes[len - 2], bytes[len - 1]]);
    if crc32fast::hash(body) != crc {
        return Err(false);
    }
    Ok(Record {
        kind,
        key: &bytes[HEAD..HEAD + key_len],
        value: &bytes[HEAD + key_len..len - 4],
        len,
    })
}

/// Replays `bytes` into the live entries.
fn replay(bytes: &[u8]) -> (BTreeMap<Vec<u8>, Vec<u8>>, usize, OpenReport) {
    let (mut live, mut dead, mut report) = (BTreeMap::new(), 0, OpenReport::default());
    let mut at = 0;
    while at < bytes.len() {
        match parse(&bytes[at..]) {
            Ok(r) => {
                let replaced = if r.kind == PUT {
                    live.insert(r.key.to_vec(), r.value.to_vec()).is_some()
                } else {
                    live.remove(r.key).is_some()
                };
                dead += usize::from(replaced) + usize::from(r.kind == REMOVE);
                at += r.len;
            }
            Err(short) => {
                // The next offset where a whole valid record starts.
                let next = (at + 1..bytes.len())
                    .find(|o| bytes[*o] == MARKER && parse(&bytes[*o..]).is_ok());
                match next {
                    Some(o) => {
                        report.damaged.push(at as u64);
                        at = o;
                    }
                    None if short => {
                        report.torn_at = Some(at as u64);
                        break;
                    }
                    None => {
                        report.damaged.push(at as u64);
                        break;
                    }
                }
            }
        }
    }
    report.kept = live.len();
    (live, dead, report)
}

impl LogDisk {
    /// Opens (or creates) the journal file at `path`, reading back what it holds.
    pub fn open(path: &Path) -> std::io::Result<(Self, OpenReport)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (live, dead, mut report) = replay(&bytes);
        let damaged = !report.damaged.is_empty() || report.torn_at.is_some();
        if damaged || (dead >= REWRITE_DEAD && dead > live.len()) {
            rewrite(path, &live)?;
            report.rewritten = true;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let dead = if report.rewritten { 0 } else { dead };
        Ok((Self { path: path.to_owned(), inner: Mutex::new(Inner { file, live, dead }) }, report))
    }

    fn append(&self, inner: &mut Inner, bytes: &[u8]) -> Result<(), String> {
        inner.file.write_all(bytes).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if inner.dead >= REWRITE_DEAD && inner.dead > inner.live.len() {
            rewrite(&self.path, &inner.live)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            inner.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            inner.dead = 0;
        }
        Ok(())
    }
}

/// Writes `live` as a new file and renames it over `path`, durably.
fn rewrite(path: &Path, live: &BTreeMap<Vec<u8>, Vec<u8>>) -> std::io::Result<()> {
    let tmp = path.with_extension("log.tmp");
    let mut f = File::create(&tmp)?;
    let mut out = Vec::new();
    for (k, v) in live {
        out.extend_from_slice(&record(PUT, k, v));
    }
    f.write_all(&out)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().and_then(|d| File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl crate::journal::JournalDisk for LogDisk {
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(format!("a journal record of {} + {} bytes", key.len(), value.len()));
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.append(&mut inner, &record(PUT, key, value))?;
        if inner.live.insert(key.to_vec(), value.to_vec()).is_some() {
            inner.dead += 1;
        }
        Ok(())
    }

    fn remove(&self, key: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.live.remove(key).is_none() {
            return;
        }
        inner.dead += 2;
        if let Err(e) = self.append(&mut inner, &record(REMOVE, key, &[])) {
            tracing::warn!(error = %e, "cannot remove a journal entry");
        }
    }

    fn flush(&self) -> Result<(), String> {
        // The sync runs without the lock: writers go on appending meanwhile.
        let file = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.file.try_clone().map_err(|e| format!("{}: {e}", self.path.display()))?
        };
        file.sync_data().map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.live.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalDisk;

    fn key(i: u32) -> Vec<u8> {
        let mut k = vec![0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    /// A journal of `n` entries of 100 bytes, one removed in ten; its path and bytes.
    fn written(dir: &Path, n: u32) -> (PathBuf, Vec<u8>) {
        let path = dir.join(FILE);
        let (disk, report) = LogDisk::open(&path).unwrap();
        assert_eq!(report, OpenReport::default());
        for i in 0..n {
            disk.insert(&key(i), &[i as u8; 100]).unwrap();
        }
        for i in (0..n).step_by(10) {
            disk.remove(&key(i));
        }
        disk.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    #[test]
    fn entries_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = written(dir.path(), 200);
        let (disk, report) = LogDisk::open(&path).unwrap();
        assert_eq!((report.kept, report.damaged.len(), report.torn_at), (180, 0, None));
        let entries = disk.entries();
        assert!(entries.iter().all(|(k, v)| k[..4] != 0u32.to_be_bytes() && v.len() == 100));
    }

    #[test]
    fn a_bit_flip_costs_only_its_record_and_is_reported_where() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes) = written(dir.path(), 200);
        // Flip a bit inside the 52nd record's value (each put is 8 + 32 + 100 + 4 = 144 bytes;
        // key 51 is not among those removed later).
        let at = 51 * 144;
        bytes[at + 60] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();
        let (disk, report) = LogDisk::open(&path).unwrap();
        assert_eq!(report.damaged, vec![at as u64]);
        assert_eq!(report.kept, 179, "only the damaged record is lost");
        assert!(report.rewritten);
        assert!(!disk.entries().iter().any(|(k, _)| k == &key(51)));
        // The rewritten file reads clean.
        drop(disk);
        let (_, again) = LogDisk::open(&path).unwrap();
        assert_eq!((again.kept, again.damaged.len(), again.rewritten), (179, 0, false));
    }

    #[test]
    fn many_flips_and_a_cut_keep_everything_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes) = written(dir.path(), 200);
        // Ten records damaged in their heads, keys and checksums.
        for r in [3usize, 17, 40, 41, 90, 120, 150, 160, 170, 180] {
            bytes[r * 144 + (r % 7) * 20] ^= 0x80;
        }
        // And the file cut in the middle of its last record.
        let cut = bytes.len() - 5;
        bytes.truncate(cut);
        std::fs::write(&path, &bytes).unwrap();
        let (disk, report) = LogDisk::open(&path).unwrap();
        // Records 40 and 41 are one damaged stretch: nine places.
        assert_eq!(report.damaged.len(), 9, "{report:?}");
        assert_eq!(report.damaged[0], 3 * 144);
        assert_eq!(report.torn_at, Some(cut as u64 - (8 + 32 + 4 - 5)), "{report:?}");
        // 180 live before the damage; of the ten damaged puts, keys 3, 17 and 41 were live (the
        // others were removed later anyway); the cut remove leaves key 190 live.
        assert_eq!(report.kept, 180 - 3 + 1, "{report:?}");
        assert_eq!(disk.entries().len(), report.kept);
    }

    #[test]
    fn superseded_records_are_rewritten_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (disk, _) = LogDisk::open(&path).unwrap();
        for i in 0..(REWRITE_DEAD as u32) {
            disk.insert(&key(i), b"x").unwrap();
            disk.remove(&key(i));
        }
        disk.insert(&key(7), b"kept").unwrap();
        disk.flush().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 10 * 1024, "the file kept {size} bytes of superseded records");
        drop(disk);
        let (disk, report) = LogDisk::open(&path).unwrap();
        assert_eq!(report.kept, 1);
        assert_eq!(disk.entries(), vec![(key(7), b"kept".to_vec())]);
    }
}
