//! The export file: a whole ledger in one file, for auditors and archives.
//!
//! ```text
//! file   = magic "SURPLUS-LEDGER\0\0" (16 bytes), version u16 = 1, chain_id (u8 length + bytes),
//!          block*, footer
//! block  = 'B', length u32, Block::encode
//! footer = 'F', block count u64, head height u64, head header hash (32)
//! ```
//! The file is written to a temporary name, synced, then renamed: a reader never sees half an
//! export. The reader never trusts a length before checking it against what the file holds.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use surplus_ledger::verify::BlockSource;
use surplus_ledger::{hex_hash, Block, ChainState, Failure, Hash};

use crate::{Error, Store};

/// First bytes of every export file.
pub const MAGIC: &[u8; 16] = b"SURPLUS-LEDGER\0\0";
/// The export format version.
pub const VERSION: u16 = 1;
/// Largest encoded block an export may hold.
pub const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Blocks written.
    pub blocks: u64,
    /// Entries written.
    pub entries: u64,
    /// Bytes in the file.
    pub bytes: u64,
    /// Head header hash.
    #[serde(with = "hex_hash")]
    pub head_hash: Hash,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Writes the store's ledger to `path`; `progress(done, total)` after each block.
pub fn write(
    store: &Store,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, Error> {
    let state = store.state().ok_or(Error::Empty)?;
    if store.base() > 0 {
        // An export is the whole ledger from genesis, which this store no longer holds.
        return Err(Error::Pruned { what: "block", value: 1, base: store.base() });
    }
    let total = state.head.height + 1;
    let tmp = tmp_path(path);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = BufWriter::new(file);
    let mut bytes = 0u64;
    let mut put = |w: &mut BufWriter<File>, b: &[u8]| -> Result<(), Error> {
        bytes += b.len() as u64;
        w.write_all(b).map_err(io_err(&tmp))
    };
    put(&mut w, MAGIC)?;
    put(&mut w, &VERSION.to_be_bytes())?;
    put(&mut w, &[state.chain_id.len() as u8])?;
    put(&mut w, state.chain_id.as_bytes())?;
    let mut entries = 0;
    let mut last_hash = [0; 32];
    for h in 0..total {
        let block = store.block(h)?;
        last_hash = block.header.hash();
        entries += block.entries.len() as u64;
        let enc = block.encode();
        put(&mut w, b"B")?;
        put(&mut w, &(enc.len() as u32).to_be_bytes())?;
        put(&mut w, &enc)?;
        progress(h + 1, total);
    }
    put(&mut w, b"F")?;
    put(&mut w, &total.to_be_bytes())?;
    put(&mut w, &state.head.height.to_be_bytes())?;
    put(&mut w, &last_hash)?;
    let file =
        w.into_inner().map_err(|e| Error::Io { path: tmp.clone(), source: e.into_error() })?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Summary { blocks: total, entries, bytes, head_hash: last_hash })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// Reads an export block by block, from a file or a stream (a node's `GET /export`); a
/// [`BlockSource`] for the audit.
pub struct Reader {
    path: PathBuf,
    r: BufReader<Box<dyn Read + Send>>,
    /// Bytes left, when the length is known (a file; a response with a length).
    remaining: Option<u64>,
    /// Chain id named in the file header.
    pub chain_id: String,
    next_height: u64,
    footer: Option<(u64, u64, Hash)>,
    done: bool,
    /// Blocks the source said it holds (for progress only).
    blocks_hint: Option<u64>,
}

impl Reader {
    /// Opens an export file and checks its header.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        Self::from_stream(path, Box::new(file), Some(len))
    }

    /// Reads an export from `stream` (named `name` in errors), `len` bytes long if known, and
    /// checks its header. Blocks are read as they come.
    pub fn from_stream(
        name: &Path,
        stream: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Result<Self, Error> {
        let path = name;
        let bad = |reason: String| Error::BadFile { path: path.to_path_buf(), reason };
        let mut r = Self {
            path: path.to_path_buf(),
            r: BufReader::with_capacity(1 << 20, stream),
            remaining: len,
            chain_id: String::new(),
            next_height: 0,
            footer: None,
            done: false,
            blocks_hint: None,
        };
        let mut magic = [0u8; 16];
        r.read_exact(&mut magic)
            .map_err(|_| bad("too short to be a Surplus ledger export".into()))?;
        if &magic != MAGIC {
            return Err(bad("not a Surplus ledger export (wrong magic bytes)".into()));
        }
        let mut v = [0u8; 2];
        r.read_exact(&mut v).map_err(|_| bad("truncated in the file header".into()))?;
        let version = u16::from_be_bytes(v);
        if version != VERSION {
            return Err(bad(format!(
                "export version {version} is not supported (this build reads {VERSION})"
            )));
        }
        let mut n = [0u8; 1];
        r.read_exact(&mut n).map_err(|_| bad("truncated in the file header".into()))?;
        let mut id = vec![0u8; usize::from(n[0])];
        r.read_exact(&mut id).map_err(|_| bad("truncated in the file header".into()))?;
        r.chain_id = String::from_utf8(id)
            .ok()
            .filter(|s| surplus_ledger::validate_chain_id(s).is_ok())
            .ok_or_else(|| bad("the file header's chain id is malformed".into()))?;
        Ok(r)
    }

    /// Says how many blocks the export should hold, for progress (a node's `X-Ledger-Height`
    /// plus one); the footer is still what is checked.
    pub fn expect_blocks(mut self, blocks: u64) -> Self {
        self.blocks_hint = Some(blocks);
        self
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.r.read_exact(buf)?;
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(buf.len() as u64);
        }
        Ok(())
    }

    fn fail(&self, field: &str, reason: impl Into<String>) -> Failure {
        Failure::block(self.next_height, field, reason)
    }

    fn read_record(&mut self) -> Result<Option<Block>, Failure> {
        let mut tag = [0u8; 1];
        if self.read_exact(&mut tag).is_err() {
            return Err(self.fail(
                "file",
                format!(
                    "{} ends after {} blocks without its footer (truncated?)",
                    self.path.display(),
                    self.next_height
                ),
            ));
        }
        match tag[0] {
            b'B' => {
                let mut len = [0u8; 4];
                self.read_exact(&mut len).map_err(|_| self.fail("record.length", "truncated"))?;
                let len = u64::from(u32::from_be_bytes(len));
                if len > MAX_BLOCK_BYTES || self.remaining.is_some_and(|r| len > r) {
                    let left =
                        self.remaining.map_or("an unknown number of".into(), |r| r.to_string());
                    return Err(self.fail(
                        "record.length",
                        format!(
                            "{len} bytes claimed, {left} bytes left in the file (limit {MAX_BLOCK_BYTES})"
                        ),
                    ));
                }
                let mut buf = vec![0u8; len as usize];
                self.read_exact(&mut buf).map_err(|e| self.fail("record", e.to_string()))?;
                let block = Block::decode(&buf).map_err(|e| self.fail("block", e.to_string()))?;
                if block.header.height != self.next_height {
                    return Err(self.fail(
                        "header.height",
                        format!("record {} holds height {}", self.next_height, block.header.height),
                    ));
                }
                self.next_height += 1;
                Ok(Some(block))
            }
            b'F' => {
                let mut f = [0u8; 48];
                self.read_exact(&mut f).map_err(|_| self.fail("footer", "truncated"))?;
                let mut count = [0u8; 8];
                count.copy_from_slice(&f[..8]);
                let mut height = [0u8; 8];
                height.copy_from_slice(&f[8..16]);
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&f[16..]);
                self.footer = Some((u64::from_be_bytes(count), u64::from_be_bytes(height), hash));
                let trailing = match self.remaining {
                    Some(r) => r,
                    None => {
                        let mut rest = Vec::new();
                        (&mut self.r).take(1 << 20).read_to_end(&mut rest).map_or(0, |n| n as u64)
                    }
                };
                if trailing != 0 {
                    return Err(self.fail("footer", format!("{trailing} bytes follow the footer")));
                }
                Ok(None)
            }
            other => Err(self.fail("record.tag", format!("unknown record tag {other:#04x}"))),
        }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("chain_id", &self.chain_id)
            .field("next_height", &self.next_height)
            .finish_non_exhaustive()
    }
}

impl BlockSource for Reader {
    fn len_hint(&self) -> Option<u64> {
        self.blocks_hint
    }

    fn next_block(&mut self) -> Option<Result<Block, Failure>> {
        if self.done {
            return None;
        }
        match self.read_record() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(f) => {
                self.done = true;
                Some(Err(f))
            }
        }
    }

    fn finish(&mut self, state: &ChainState) -> Result<(), Failure> {
        let height = state.head.height;
        let Some((count, head_height, hash)) = self.footer else {
            return Err(Failure::block(height, "footer", "missing"));
        };
        if state.chain_id != self.chain_id {
            return Err(Failure::block(
                0,
                "file.chain_id",
                format!(
                    "the file header names chain {:?}, the blocks {:?}",
                    self.chain_id, state.chain_id
                ),
            ));
        }
        if count != height + 1 || head_height != height || hash != state.head_hash {
            return Err(Failure::block(
                height,
                "footer",
                format!(
                    "says {count} blocks, head {head_height} {}; the file holds {} blocks, head {height} {}",
                    hex::encode(hash),
                    height + 1,
                    hex::encode(state.head_hash)
                ),
            ));
        }
        Ok(())
    }
}
