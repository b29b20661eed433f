//! The headers and certificates of pruned blocks, in an append-only file of their own.
//!
//! A pruning store keeps every header and certificate, forever; in the storage engine they cost
//! some 2.7 times their size on disk (sled rewrites a log segment only once half of it is dead,
//! and headers, which stay, share segments with bodies, which go). Here they cost their size
//! and 24 bytes. [`crate::Store::prune`] moves the headers below its base into this file before
//! it records the base, and deletes them from the engine only after the file is synced; the
//! headers of the blocks held in full stay in the engine, written atomically with their blocks.
//!
//! `surplus-headers` holds one record per height, consecutive from the first:
//! `height:u64 ‖ length:u32 ‖ header ‖ certificate ‖ check:4` (big-endian numbers; `check` the
//! first 4 bytes of blake3 over everything before it). `surplus-headers.idx` holds the offset of
//! each record (`u64`, big-endian), so a read costs two positioned reads and opening costs a
//! few, whatever the length. Both are written at their ends only, then synced.
//!
//! A crash during an append may leave any of its pages unwritten. Before the engine's copies
//! go, the store reads each record back and compares it with the engine's; the file is cut
//! back at the first that differs. Opening finds the last index entry that points at a good
//! record of its height and scans on from it; what follows the good records is cut away only
//! after the store has checked that the engine still holds those headers, so damage to records
//! the engine no longer holds is reported, not cut away. A damaged index entry costs a walk
//! over the records from the nearest good entry below it, not the header.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// Name of the header file in a store directory.
pub const HEADERS_FILE: &str = "surplus-headers";
/// Name of its index.
pub const INDEX_FILE: &str = "surplus-headers.idx";

/// Bytes a record adds to its header and certificate.
pub const RECORD_OVERHEAD: u64 = 16;
/// Longest header and certificate a record may hold (a certificate of 10,000 votes is some
/// 1 MiB); a longer length field is damage.
const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// Where the good records end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Tail {
    /// Height of the first record (meaningless while `count` is 0).
    first: u64,
    /// Records held.
    count: u64,
    /// Bytes of the log they fill.
    end: u64,
    /// Records whose index entries are good; the offsets of the others (found by scanning on
    /// open, until [`HeaderLog::cut_torn_tail`] writes them) are in `scanned`.
    indexed: u64,
    scanned: Vec<u64>,
    /// Whether the files hold anything past the good records.
    torn: bool,
}

/// What opening found beyond the good records: a torn append, to be cut away once the store
/// has checked that it loses nothing by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Bytes of the log past the last good record.
    pub log_bytes: u64,
    /// Records found past the last good index entry (their entries were not written, or
    /// are damaged).
    pub unindexed: u64,
}

/// The open header file and its index.
#[derive(Debug)]
pub struct HeaderLog {
    dir: PathBuf,
    log: File,
    index: File,
    tail: RwLock<Tail>,
    /// Held by the one appender (and by the repair), so that appends do not interleave.
    writer: Mutex<()>,
}

/// A read of a record that failed: the file could not be read, or holds something a good
/// record cannot be.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system failed the read.
    Io(std::io::Error),
    /// The record is not what it must be.
    Damaged(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads the record at `offset` of a log whose good bytes end at `len`: its height, its bytes
/// and the offset after it.
fn read_record(log: &File, offset: u64, len: u64) -> Result<(u64, Vec<u8>, u64), ReadError> {
    let damaged = |why: String| ReadError::Damaged(format!("record at byte {offset}: {why}"));
    if offset.checked_add(RECORD_OVERHEAD).is_none_or(|end| end > len) {
        return Err(damaged("past the end of the file".into()));
    }
    let mut head = [0u8; 12];
    log.read_exact_at(&mut head, offset)?;
    let height = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let length = u32::from_be_bytes(head[8..].try_into().expect("4 bytes"));
    if length > MAX_RECORD {
        return Err(damaged(format!("a length of {length} bytes")));
    }
    let next = offset + RECORD_OVERHEAD + u64::from(length);
    if next > len {
        return Err(damaged("its length runs past the end of the file".into()));
    }
    let mut body = vec![0u8; length as usize + 4];
    log.read_exact_at(&mut body, offset + 12)?;
    let check = body.split_off(length as usize);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head).update(&body);
    if hasher.finalize().as_bytes()[..4] != check[..] {
        return Err(damaged("its check does not match its bytes".into()));
    }
    Ok((height, body, next))
}

fn encode_record(height: u64, bytes: &[u8]) -> Vec<u8> {
    let length = u32::try_from(bytes.len()).expect("a header shorter than 4 GiB");
    let mut out = Vec::with_capacity(bytes.len() + RECORD_OVERHEAD as usize);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
    let check = blake3::hash(&out);
    out.extend_from_slice(&check.as_bytes()[..4]);
    out
}

fn read_offset(index: &File, i: u64) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    index.read_exact_at(&mut b, i * 8)?;
    Ok(u64::from_be_bytes(b))
}

fn offsets_bytes(offsets: &[u64]) -> Vec<u8> {
    offsets.iter().flat_map(|o| o.to_be_bytes()).collect()
}

impl HeaderLog {
    /// Opens (or creates) the files in `dir` and finds the good records, writing nothing.
    /// Returns what lies past them, if anything: see [`HeaderLog::cut_torn_tail`].
    pub fn open(dir: &Path) -> std::io::Result<(Self, Option<TornTail>)> {
        let open = |name: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
        };
        let (log, index) = (open(HEADERS_FILE)?, open(INDEX_FILE)?);
        let log_len = log.metadata()?.len();
        let index_len = index.metadata()?.len();
        let entries = index_len / 8;
        let mut tail = Tail::default();
        if let Ok((first, _, _)) = read_record(&log, 0, log_len) {
            tail.first = first;
            // The newest index entry that points at a good record of its height (no more
            // entries than the log has room for records are looked at).
            for i in (0..entries.min(log_len / RECORD_OVERHEAD)).rev() {
                let Ok(offset) = read_offset(&index, i) else { continue };
                if let Ok((h, _, next)) = read_record(&log, offset, log_len) {
                    if first.checked_add(i) == Some(h) {
                        (tail.indexed, tail.count, tail.end) = (i + 1, i + 1, next);
                        break;
                    }
                }
            }
            // Records past it (appended before the crash, their index entries not).
            while let Ok((h, _, next)) = read_record(&log, tail.end, log_len) {
                if first.checked_add(tail.count) != Some(h) {
                    break;
                }
                tail.scanned.push(tail.end);
                tail.count += 1;
                tail.end = next;
            }
        }
        tail.torn = tail.end < log_len || index_len != tail.count * 8 || !tail.scanned.is_empty();
        let torn = tail.torn.then_some(TornTail {
            log_bytes: log_len - tail.end,
            unindexed: tail.scanned.len() as u64,
        });
        let this = Self {
            dir: dir.to_path_buf(),
            log,
            index,
            tail: RwLock::new(tail),
            writer: Mutex::new(()),
        };
        Ok((this, torn))
    }

    fn read_tail(&self) -> std::sync::RwLockReadGuard<'_, Tail> {
        self.tail.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The heights held, `first..end`, or `None` if none.
    pub fn heights(&self) -> Option<std::ops::Range<u64>> {
        let t = self.read_tail();
        (t.count > 0).then(|| t.first..t.first.saturating_add(t.count))
    }

    /// Records held and bytes of the log they fill.
    pub fn size(&self) -> (u64, u64) {
        let t = self.read_tail();
        (t.count, t.end)
    }

    /// The path of the log (for errors).
    pub fn path(&self) -> PathBuf {
        self.dir.join(HEADERS_FILE)
    }

    /// Writes the index entries of the records found by scanning, cuts both files back to the
    /// good records (after a torn append), and syncs them.
    pub fn cut_torn_tail(&self) -> std::io::Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut t = self.tail.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !t.torn {
            return Ok(());
        }
        self.index.set_len(t.indexed * 8)?;
        self.index.write_all_at(&offsets_bytes(&t.scanned), t.indexed * 8)?;
        self.log.set_len(t.end)?;
        self.index.sync_data()?;
        self.log.sync_data()?;
        t.indexed = t.count;
        t.scanned.clear();
        t.torn = false;
        Ok(())
    }

    /// The header and certificate at `height`, `None` if this file does not hold it.
    pub fn get(&self, height: u64) -> Result<Option<Vec<u8>>, ReadError> {
        let t = self.read_tail();
        if t.count == 0 || height < t.first || height - t.first >= t.count {
            return Ok(None);
        }
        let i = height - t.first;
        let offset = match i.checked_sub(t.indexed) {
            None => read_offset(&self.index, i)?,
            Some(j) => t.scanned[j as usize],
        };
        match read_record(&self.log, offset, t.end) {
            Ok((h, bytes, _)) if h == height => Ok(Some(bytes)),
            // A damaged index entry: the records are the truth, found from a good entry below.
            Ok((h, _, _)) => self.scan_to(&t, height).map(|r| Some(r.0)).map_err(|why| {
                ReadError::Damaged(format!(
                    "the record indexed for height {height} is for height {h}, and {why}"
                ))
            }),
            Err(ReadError::Damaged(first)) => self
                .scan_to(&t, height)
                .map(|r| Some(r.0))
                .map_err(|why| ReadError::Damaged(format!("{first}, and {why}"))),
            Err(e) => Err(e),
        }
    }

    /// The header and certificate at `height` as its index entry finds them: `None` if this
    /// file does not hold it or the entry does not point at a good record of that height.
    pub fn get_indexed(&self, height: u64) -> std::io::Result<Option<Vec<u8>>> {
        let t = self.read_tail();
        if t.count == 0 || height < t.first || height - t.first >= t.indexed {
            return Ok(None);
        }
        let offset = read_offset(&self.index, height - t.first)?;
        Ok(match read_record(&self.log, offset, t.end) {
            Ok((h, bytes, _)) if h == height => Some(bytes),
            _ => None,
        })
    }

    /// Cuts the file back to the records below `height` (a record at or above it found damaged
    /// while the engine still holds a copy), and syncs it.
    pub fn truncate_to(&self, height: u64) -> std::io::Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut t = self.tail.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.torn {
            return Err(std::io::Error::other(format!(
                "{}: a torn append is not cut away yet",
                self.dir.join(HEADERS_FILE).display()
            )));
        }
        if t.count == 0 || height <= t.first {
            t.count = 0;
            t.end = 0;
        } else if height - t.first < t.count {
            let below = height - 1;
            let offset = read_offset(&self.index, below - t.first)?;
            let end = match read_record(&self.log, offset, t.end) {
                Ok((h, _, next)) if h == below => next,
                _ => self.scan_to(&t, below).map_err(std::io::Error::other)?.1,
            };
            t.count = height - t.first;
            t.end = end;
        } else {
            return Ok(());
        }
        t.indexed = t.count.min(t.indexed);
        t.scanned.clear();
        t.torn = false;
        self.index.set_len(t.count * 8)?;
        self.log.set_len(t.end)?;
        self.index.sync_data()?;
        self.log.sync_data()
    }

    /// Finds the record of `height` by walking the records from the nearest index entry below
    /// it that points at a good record of its own height (after damage to the index only): its
    /// bytes and the offset after it.
    fn scan_to(&self, t: &Tail, height: u64) -> Result<(Vec<u8>, u64), String> {
        let i = height - t.first;
        let mut start = None;
        for j in (0..i.min(t.indexed)).rev() {
            let Ok(offset) = read_offset(&self.index, j) else { continue };
            if let Ok((h, _, next)) = read_record(&self.log, offset, t.end) {
                if t.first.checked_add(j) == Some(h) && h < height {
                    start = Some((h + 1, next));
                    break;
                }
            }
        }
        let (mut at, mut offset) = start.unwrap_or((t.first, 0));
        loop {
            match read_record(&self.log, offset, t.end) {
                Ok((h, bytes, next)) if h == height && at == height => return Ok((bytes, next)),
                Ok((h, _, next)) if h == at && h < height => (at, offset) = (h + 1, next),
                Ok((h, _, _)) => {
                    return Err(format!("the record where height {at} belongs is for height {h}"))
                }
                Err(ReadError::Damaged(why)) => {
                    return Err(format!("walking the records from below: {why}"))
                }
                Err(ReadError::Io(e)) => return Err(e.to_string()),
            }
        }
    }

    /// Appends the records of consecutive heights, the first of them the height after the
    /// last held (any height if none is), and syncs both files before returning. Refused
    /// while a torn tail waits for [`HeaderLog::cut_torn_tail`].
    pub fn append(&self, records: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
        let Some((first, _)) = records.first() else { return Ok(()) };
        let _writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = self.read_tail().clone();
        if t.torn {
            return Err(std::io::Error::other(format!(
                "{}: a torn append is not cut away yet",
                self.path().display()
            )));
        }
        let expected = if t.count == 0 { *first } else { t.first + t.count };
        for (i, (h, raw)) in records.iter().enumerate() {
            if raw.len() > MAX_RECORD as usize {
                return Err(std::io::Error::other(format!(
                    "{}: a header of {} bytes at height {h}, over the {MAX_RECORD} a record holds",
                    self.path().display(),
                    raw.len()
                )));
            }
            if *h != expected + i as u64 {
                return Err(std::io::Error::other(format!(
                    "{}: appending height {h} where height {} comes next",
                    self.path().display(),
                    expected + i as u64
                )));
            }
        }
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(records.len());
        for (h, raw) in records {
            offsets.push(t.end + bytes.len() as u64);
            bytes.extend_from_slice(&encode_record(*h, raw));
        }
        // A crash may leave either file written without the other: opening checks each index
        // entry against the record it points at.
        self.log.write_all_at(&bytes, t.end)?;
        self.index.write_all_at(&offsets_bytes(&offsets), t.count * 8)?;
        self.log.sync_data()?;
        self.index.sync_data()?;
        if t.count == 0 {
            // The files' names, made when they were opened, must outlive a crash too.
            File::open(&self.dir)?.sync_all()?;
        }
        let mut tail = self.tail.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        tail.first = if t.count == 0 { *first } else { t.first };
        tail.count = t.count + records.len() as u64;
        tail.indexed = tail.count;
        tail.end = t.end + bytes.len() as u64;
        Ok(())
    }
}
