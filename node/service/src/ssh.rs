//! The provider's SSH certificate authority (`docs/operations.md`, SSH access): a lease's
//! credential is exchanged at its provider for an OpenSSH user certificate, valid until the
//! lease's end and only for the lease's principal. A certificate whose token the ledger revoked,
//! or whose lease ended early, is listed in a key revocation list (KRL) that `sshd` reads
//! (`RevokedKeys`), built with OpenSSH's own `ssh-keygen -k`.
//!
//! Files, under `DATA_DIR/ssh/`: `ca` (the authority's ed25519 key, mode 0600, made at first
//! start), `ca.pub` (for `TrustedUserCAKeys`), `issued.json` (each certificate's serial,
//! lease, token hash and end) and `revoked.krl` (for `RevokedKeys`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use ssh_key::{certificate, Algorithm, LineEnding, PrivateKey, PublicKey};
use surplus_contracts::{LeaseStatus, State};
use surplus_ledger::Hash;

/// The principal (and, with the sample Linux hook, the local account) of a lease:
/// `lease-` and the first 12 hex digits of its id.
pub fn principal(lease: &Hash) -> String {
    format!("lease-{}", &hex::encode(lease)[..12])
}

/// One certificate the authority signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// Its serial number.
    pub serial: u64,
    /// The lease.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub lease: Hash,
    /// blake3 of the token it was exchanged for.
    #[serde(with = "surplus_ledger::hex_hash")]
    pub token_hash: Hash,
    /// Its end of validity, seconds since the epoch.
    pub valid_before: u64,
    /// Revoked (its token was revoked or its lease ended before `valid_before`).
    #[serde(default)]
    pub revoked: bool,
}

/// A signed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The certificate, in OpenSSH's one-line format (what `ssh -o CertificateFile=` reads).
    pub certificate: String,
    /// Its principal.
    pub principal: String,
    /// Its serial.
    pub serial: u64,
    /// Its validity, seconds since the epoch.
    pub valid_after: u64,
    /// Its end of validity (the lease's end), seconds since the epoch.
    pub valid_before: u64,
}

/// The authority.
pub struct Ca {
    dir: PathBuf,
    key: PrivateKey,
    issued: Mutex<Vec<Issued>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Ca {
    /// Opens the authority in `data_dir/ssh`, making its key the first time.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("ssh");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("ca");
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => PrivateKey::from_openssh(text.as_bytes())
                .with_context(|| format!("{} is not an OpenSSH private key", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
                    .context("cannot make the SSH certificate authority's key")?;
                key.set_comment("surplus-lease-ca");
                let text = key.to_openssh(LineEnding::LF).context("cannot encode the CA key")?;
                crate::keyfile::write_secret(&path, text.as_bytes())?;
                key
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let public = key.public_key().to_openssh().context("cannot encode the CA's public key")?;
        crate::config::write_atomic(&dir.join("ca.pub"), format!("{public}\n").as_bytes())?;
        let issued = match std::fs::read(dir.join("issued.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{}/issued.json is damaged", dir.display()))?,
            Err(_) => Vec::new(),
        };
        let ca = Self { dir, key, issued: Mutex::new(issued) };
        if !ca.krl_path().exists() {
            ca.write_krl(&ca.issued.lock().unwrap_or_else(|e| e.into_inner()));
        }
        Ok(ca)
    }

    /// The authority's public key, OpenSSH format (the line of `ca.pub`).
    pub fn public_key(&self) -> String {
        self.key.public_key().to_openssh().unwrap_or_default()
    }

    /// The revocation list `sshd` reads (`RevokedKeys`).
    pub fn krl_path(&self) -> PathBuf {
        self.dir.join("revoked.krl")
    }

    /// Signs `subject` (an OpenSSH public key line) for `lease`'s principal until
    /// `valid_before` (s), for the token whose hash is `token_hash`; records it.
    pub fn issue(
        &self,
        lease: &Hash,
        token_hash: Hash,
        subject: &str,
        now_s: u64,
        valid_before: u64,
    ) -> Result<Signed, String> {
        let subject = PublicKey::from_openssh(subject.trim()).map_err(|e| {
            format!("the public key is not an OpenSSH public key line (ssh-ed25519 AAAA…): {e}")
        })?;
        if valid_before <= now_s {
            return Err("the lease ends now: no certificate".into());
        }
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let serial = issued.iter().map(|i| i.serial).max().unwrap_or(0) + 1;
        let principal = principal(lease);
        // A minute back, for clocks a little behind the node's.
        let valid_after = now_s.saturating_sub(60);
        let sign = || -> ssh_key::Result<ssh_key::Certificate> {
            let mut b = certificate::Builder::new_with_random_nonce(
                &mut rand_core::OsRng,
                subject.key_data().clone(),
                valid_after,
                valid_before,
            )?;
            b.serial(serial)?
                .cert_type(certificate::CertType::User)?
                .key_id(format!("surplus lease {} serial {serial}", hex::encode(lease)))?
                .valid_principal(principal.clone())?
                .extension("permit-pty", "")?
                .extension("permit-port-forwarding", "")?;
            b.sign(&self.key)
        };
        let cert = sign().map_err(|e| format!("cannot sign the certificate: {e}"))?;
        let certificate = cert.to_openssh().map_err(|e| format!("cannot encode it: {e}"))?;
        issued.push(Issued { serial, lease: *lease, token_hash, valid_before, revoked: false });
        // Expired ones need no record: sshd refuses them by their dates.
        issued.retain(|i| i.valid_before > now_s);
        self.save(&issued);
        Ok(Signed { certificate, principal, serial, valid_after, valid_before })
    }

    /// Revokes every certificate whose lease is no longer active in `state` (it ended early)
    /// or whose token is no longer the lease's grant (the ledger revoked it), and rewrites the
    /// revocation list when that changed anything; the serials revoked now.
    pub fn revoke_stale(&self, state: &State) -> Vec<u64> {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = Vec::new();
        for i in issued.iter_mut().filter(|i| !i.revoked) {
            let current = state.lease(&i.lease).is_some_and(|l| {
                l.status == LeaseStatus::Active
                    && l.grant.as_ref().is_some_and(|g| g.token_hash == i.token_hash)
            });
            if !current {
                i.revoked = true;
                now.push(i.serial);
            }
        }
        if !now.is_empty() {
            self.save(&issued);
            self.write_krl(&issued);
        }
        now
    }

    fn save(&self, issued: &[Issued]) {
        let path = self.dir.join("issued.json");
        let bytes = serde_json::to_vec_pretty(issued).unwrap_or_default();
        if let Err(e) = crate::config::write_atomic(&path, &bytes) {
            tracing::error!(error = %e, "cannot record the SSH certificates issued");
        }
    }

    /// Writes the KRL of the revoked serials with `ssh-keygen -k` (OpenSSH's own encoder).
    fn write_krl(&self, issued: &[Issued]) {
        let spec = self.dir.join("revoked.spec");
        let mut text = String::new();
        for i in issued.iter().filter(|i| i.revoked) {
            text.push_str(&format!("serial: {}\n", i.serial));
        }
        let tmp = self.dir.join("revoked.krl.tmp");
        let _ = std::fs::remove_file(&tmp);
        let made = std::fs::write(&spec, text).and_then(|()| {
            std::process::Command::new("ssh-keygen")
                .arg("-k")
                .arg("-f")
                .arg(&tmp)
                .arg("-s")
                .arg(self.dir.join("ca.pub"))
                .arg(&spec)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .output()
        });
        match made {
            Ok(out) if out.status.success() => {
                if let Err(e) = std::fs::rename(&tmp, self.krl_path()) {
                    tracing::error!(error = %e, "cannot replace the SSH revocation list");
                }
            }
            Ok(out) => tracing::error!(
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "ssh-keygen could not write the SSH revocation list"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "cannot run ssh-keygen (openssh-client) to write the SSH revocation list: \
                 revoked certificates stay valid until their lease's end"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority_persists_and_signs_for_the_lease_principal() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open(dir.path()).unwrap();
        let again = Ca::open(dir.path()).unwrap();
        assert_eq!(ca.public_key(), again.public_key(), "the key is kept");
        let subject = PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).unwrap();
        let line = subject.public_key().to_openssh().unwrap();
        let lease = [0xab; 32];
        let s = ca.issue(&lease, [1; 32], &line, 1_000, 5_000).unwrap();
        assert_eq!(s.principal, "lease-abababababab");
        let cert = ssh_key::Certificate::from_openssh(&s.certificate).unwrap();
        assert_eq!(cert.valid_principals(), std::slice::from_ref(&s.principal));
        assert_eq!((cert.valid_after(), cert.valid_before(), cert.serial()), (940, 5_000, 1));
        let ca_fp = ca.key.public_key().fingerprint(Default::default());
        cert.validate_at(2_000, [&ca_fp]).unwrap();
        assert!(cert.validate_at(5_001, [&ca_fp]).is_err(), "valid past the lease's end");
        assert_eq!(ca.issue(&lease, [1; 32], &line, 1_001, 5_000).unwrap().serial, 2);
        assert!(ca.issue(&lease, [1; 32], "ssh-rsa nonsense", 1_000, 5_000).is_err());
        assert!(ca.issue(&lease, [1; 32], &line, 5_000, 5_000).is_err());
    }
}
