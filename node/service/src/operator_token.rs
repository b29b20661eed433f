//! The operator token: the secret that opens a node's operator endpoints (`GET
//! /api/v1/operator` and the operator page). The node makes it at its first start, 32 random
//! bytes in hex in `DIR/operator.token`, readable by the owner only; whoever can read the data
//! directory is the operator. Delete the file and restart to make a new one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// The token file's name in the data directory.
pub const FILE: &str = "operator.token";

/// The token file of the node whose data directory is `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The node's operator token: read from `DIR/operator.token`, or made and written there.
pub fn load_or_create(dir: &Path) -> Result<String> {
    let file = path(dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let token = text.trim();
            if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{}: an operator token is 64 hex digits; delete the file and start the node \
                     to make a new one",
                    file.display()
                );
            }
            Ok(token.to_ascii_lowercase())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("no randomness for the operator token: {e}"))?;
            let token = hex::encode(bytes);
            crate::keyfile::write_secret(&file, format!("{token}\n").as_bytes())?;
            tracing::info!(file = %file.display(), "made the operator token");
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create(dir.path()).unwrap();
        assert_eq!(made.len(), 64);
        assert_eq!(load_or_create(dir.path()).unwrap(), made, "the same token again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by the owner only");
        }
        std::fs::write(path(dir.path()), "not a token").unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("64 hex digits") && e.contains("operator.token"), "{e}");
    }
}
