//! Key files: an ed25519 seed in the text form of `SecretKey::to_file_contents`, readable by
//! the owner only.

use std::path::Path;

use anyhow::{Context as _, Result};
use surplus_ledger::SecretKey;

/// Reads the key file at `path`.
pub fn read_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    SecretKey::from_file_contents(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Creates `path` with mode 0600, refusing to overwrite.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}
