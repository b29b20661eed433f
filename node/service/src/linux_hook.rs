//! The sample provisioning hook that makes a lease real on a Linux host (`surplus hook linux`,
//! `docs/operations.md`, SSH access): at start a local account named after the lease's
//! principal, which `sshd` lets in only with a certificate of the provider's authority for that
//! principal (one line in `PRINCIPALS_DIR/<account>`, for `AuthorizedPrincipalsFile`), with the
//! resource limits of the lease's class; at end the account, its home, its processes and its
//! limits are removed. It needs root (it runs `useradd` and `userdel`).
//!
//! Limits: with systemd (cgroup v2) the account's `user-UID.slice` gets `CPUQuota` (100 % per
//! `vcpu`) and `MemoryMax` (`ram_gib`) at runtime; without it `pam_limits` gets a
//! `limits.d` file (address space from `ram_gib`, processes), which applies to logins through
//! PAM.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::provision::{Event, LeaseEvent};

/// Where `sshd` and the hook meet, and what the hook answers.
#[derive(Clone, Debug)]
pub struct LinuxHost {
    /// One file per account, holding the principal it accepts.
    pub principals_dir: PathBuf,
    /// The host buyers connect to, as answered in the access details.
    pub host: String,
    /// The SSH port, as answered.
    pub port: u16,
    /// Where `pam_limits` reads per-account files (`/etc/security/limits.d`).
    pub limits_dir: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn account_exists(name: &str) -> bool {
    Command::new("id").arg("-u").arg(name).output().is_ok_and(|o| o.status.success())
}

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Runs the hook for `ev`: the access details at start (and move), a release note at end.
pub fn linux_hook(host: &LinuxHost, ev: &LeaseEvent) -> Result<Value> {
    let id = surplus_ledger::parse_hex::<32>(&ev.lease_id, "lease_id")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = crate::ssh::principal(&id);
    let principals = host.principals_dir.join(&account);
    let limits = host.limits_dir.join(format!("surplus-{account}.conf"));
    match ev.event {
        Event::Start | Event::Move => {
            if !account_exists(&account) {
                run(Command::new("useradd")
                    .args(["--create-home", "--shell", "/bin/sh", "--comment"])
                    .arg(format!("surplus lease {}", ev.lease_id))
                    .arg(&account))?;
                // No password, yet not locked: sshd admits a locked account by no key.
                run(Command::new("usermod").args(["--password", "*"]).arg(&account))?;
            }
            std::fs::create_dir_all(&host.principals_dir)
                .with_context(|| format!("cannot create {}", host.principals_dir.display()))?;
            crate::config::write_atomic(&principals, format!("{account}\n").as_bytes())?;
            let vcpu = ev.attributes.get("vcpu").copied().unwrap_or(1);
            let ram_gib = ev.attributes.get("ram_gib").copied().unwrap_or(1);
            let slots = ev.lease["fill"]["slots"].as_u64().unwrap_or(1).max(1);
            let (cpus, gib) = (vcpu * slots, ram_gib * slots);
            let how = if systemd_runs() {
                let uid = run(Command::new("id").arg("-u").arg(&account))?;
                run(Command::new("systemctl")
                    .args(["set-property", "--runtime"])
                    .arg(format!("user-{uid}.slice"))
                    .arg(format!("CPUQuota={}%", cpus * 100))
                    .arg(format!("MemoryMax={gib}G")))?;
                "cgroup v2 (systemd user slice)"
            } else {
                std::fs::create_dir_all(&host.limits_dir).ok();
                let kib = gib.saturating_mul(1024 * 1024);
                let text = format!(
                    "# surplus lease {}: {cpus} vCPU, {gib} GiB\n{account} hard as {kib}\n\
                     {account} hard nproc {}\n",
                    ev.lease_id,
                    256 * cpus
                );
                crate::config::write_atomic(&limits, text.as_bytes())?;
                "pam_limits"
            };
            let mut access = json!({
                "host": host.host,
                "port": host.port,
                "user": account,
                "principal": account,
                "lease_id": ev.lease_id,
                "limits": { "vcpu": cpus, "ram_gib": gib, "enforced_by": how },
                "note": "log in with the certificate of `surplus lease ssh`",
            });
            if let Some(pool) = &ev.pool {
                access["pool"] = Value::String(pool.clone());
            }
            Ok(access)
        }
        Event::End => {
            if account_exists(&account) {
                // Its processes first: userdel refuses an account that is logged in.
                let _ = Command::new("pkill").arg("-KILL").arg("-u").arg(&account).status();
                run(Command::new("userdel").arg("--remove").arg(&account))?;
            }
            for f in [&principals, &limits] {
                match std::fs::remove_file(f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot remove {}", f.display()))
                    }
                }
            }
            Ok(json!({ "released": true, "lease_id": ev.lease_id, "user": account }))
        }
    }
}
