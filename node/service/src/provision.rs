//! Provisioning hooks run at lease start and end, their persistent record, and the sample hook
//! that devnet uses (`surplus hook sample`).
//!
//! A hook receives a [`LeaseEvent`] as JSON and answers with a JSON object: the access details
//! the buyer gets (host, user, whatever the operator's systems hand out). `exec` runs a command
//! with the event on stdin and reads its stdout; `http` POSTs the event to a webhook. Both retry
//! with a doubling backoff, and every outcome (success or the last error) is recorded in
//! [`ProvisionLog`] so the buyer can see it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::{write_atomic, HookKind, Provisioning};
use surplus_net::Clock;

/// Largest hook answer read (stdout or HTTP body); more is a failure.
pub const MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// Longest wait between two attempts, however many retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How much of a failing command's stderr (or a failing webhook's body) an error quotes.
const EXCERPT_BYTES: usize = 500;

/// Which moment of a lease's life a hook is told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The lease was committed: provision the capacity.
    Start,
    /// The lease ended (ran out or was terminated): release it.
    End,
    /// The lease moves to another pool (`pool`, from `from_pool`) before maintenance: provision
    /// it there, with the same id, price and credential, and answer its new access details.
    Move,
}

/// What a hook receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseEvent {
    /// Start or end.
    pub event: Event,
    /// The lease as the contracts serialize it (`surplus_contracts::Lease`).
    pub lease: Value,
    /// The lease id, hex.
    pub lease_id: String,
    /// The chain the lease is on.
    pub chain_id: String,
    /// The operator's pool the lease runs on (for a move, the pool it moves to); absent for a
    /// lease of a market no pool has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// For a move: the pool it leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_pool: Option<String>,
    /// The numeric attributes of one slot of the lease's class, from the catalogue (`vcpu`,
    /// `ram_gib`, …): what to give it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, u64>,
}

impl LeaseEvent {
    /// The event for `lease` on `chain_id`.
    pub fn new(event: Event, lease: &surplus_contracts::Lease, chain_id: &str) -> Self {
        Self {
            event,
            // A lease is plain data with string keys; serializing it cannot fail.
            lease: serde_json::to_value(lease).unwrap_or(Value::Null),
            lease_id: hex::encode(lease.id),
            chain_id: chain_id.to_owned(),
            pool: None,
            from_pool: None,
            attributes: Default::default(),
        }
    }

    /// The same event with its class's attributes from `catalogue`.
    pub fn with_class(mut self, catalogue: &surplus_market::Catalogue, class: &str) -> Self {
        if let Some(c) = catalogue.classes.iter().find(|c| c.id == class) {
            self.attributes = c.attributes.clone();
        }
        self
    }

    /// The same event for a lease on `pool`.
    pub fn on(mut self, pool: Option<String>) -> Self {
        self.pool = pool;
        self
    }
}

/// What running a hook came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether an attempt succeeded.
    pub ok: bool,
    /// Attempts made (0 when no hook is configured).
    pub attempts: u32,
    /// The hook's answer: access details for the buyer.
    pub access: Option<Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it finished, ms since the epoch.
    pub finished_ms: u64,
}

/// A configured provisioning hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Nothing runs.
    None,
    /// A local command: the event JSON on stdin, a JSON object expected on stdout.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
        /// Time allowed for one attempt; the command (and its process group) is killed then.
        timeout: Duration,
        /// Attempts after the first.
        retries: u32,
        /// Wait before the first retry; doubles for each later one.
        backoff: Duration,
    },
    /// A webhook: the event JSON POSTed, a JSON object expected in the 2xx answer.
    Http {
        /// The URL (`http://`).
        url: String,
        /// Time allowed for one attempt.
        timeout: Duration,
        /// Attempts after the first.
        retries: u32,
        /// Wait before the first retry; doubles for each later one.
        backoff: Duration,
    },
}

impl Hook {
    /// The hook a (validated) `[provisioning]` section describes.
    pub fn from_config(p: &Provisioning) -> Hook {
        let timeout = Duration::from_millis(p.timeout_ms);
        let backoff = Duration::from_millis(p.retry_backoff_ms);
        match p.kind {
            HookKind::None => Hook::None,
            HookKind::Exec if p.command.is_empty() => Hook::None,
            HookKind::Exec => {
                Hook::Exec { command: p.command.clone(), timeout, retries: p.retries, backoff }
            }
            HookKind::Http => {
                Hook::Http { url: p.url.clone(), timeout, retries: p.retries, backoff }
            }
        }
    }

    /// Runs the hook for `ev`, retrying failed attempts, and says how it went (finished at
    /// `clock`'s time).
    pub async fn run(&self, ev: &LeaseEvent, clock: &dyn Clock) -> Outcome {
        // A struct of strings and JSON values always serializes.
        let input = serde_json::to_vec(ev).unwrap_or_default();
        let (retries, backoff) = match self {
            Hook::None => {
                return Outcome {
                    ok: true,
                    attempts: 0,
                    access: None,
                    error: None,
                    finished_ms: clock.now_ms(),
                }
            }
            Hook::Exec { retries, backoff, .. } | Hook::Http { retries, backoff, .. } => {
                (*retries, *backoff)
            }
        };
        let total = retries.saturating_add(1);
        let mut wait = backoff;
        let mut error = String::new();
        for attempt in 1..=total {
            let result = match self {
                Hook::Exec { command, timeout, .. } => exec_once(command, &input, *timeout).await,
                Hook::Http { url, timeout, .. } => http_once(url, &input, *timeout).await,
                Hook::None => Ok(Value::Null),
            };
            match result {
                Ok(access) => {
                    return Outcome {
                        ok: true,
                        attempts: attempt,
                        access: Some(access),
                        error: None,
                        finished_ms: clock.now_ms(),
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        lease = %ev.lease_id, event = ?ev.event, attempt, of = total,
                        "provisioning hook failed: {e}"
                    );
                    error = e;
                }
            }
            if attempt < total {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        Outcome {
            ok: false,
            attempts: total,
            access: None,
            error: Some(format!("{total} attempt(s) failed; the last: {error}")),
            finished_ms: clock.now_ms(),
        }
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    // The end of the output usually says what went wrong.
    let mut start = text.len() - EXCERPT_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// The answer must be one JSON object.
fn parse_answer(bytes: &[u8], what: &str) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{what} is JSON but not an object: {}", excerpt(bytes))),
        Err(e) => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                Err(format!("{what} is empty: a hook must print a JSON object of access details"))
            } else {
                Err(format!("{what} is not a JSON object ({e}): {}", excerpt(bytes)))
            }
        }
    }
}

/// Reads up to `MAX_ANSWER_BYTES` and drains the rest (so the writer never blocks on a full
/// pipe); says whether there was more.
async fn read_bounded<R: AsyncRead + Unpin>(r: Option<R>) -> (Vec<u8>, bool) {
    let Some(mut r) = r else { return (Vec::new(), false) };
    let mut buf = Vec::new();
    let _ = (&mut r).take(MAX_ANSWER_BYTES + 1).read_to_end(&mut buf).await;
    let over = buf.len() as u64 > MAX_ANSWER_BYTES;
    if over {
        buf.truncate(MAX_ANSWER_BYTES as usize);
        let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
    }
    (buf, over)
}

pub(crate) async fn exec_once(
    command: &[String],
    input: &[u8],
    timeout: Duration,
) -> Result<Value, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("no command configured".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that a timeout also stops what the command started.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = input.to_vec();
    let run = async move {
        let write = async move {
            if let Some(mut s) = stdin {
                // A command that does not read its input is its own business.
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        };
        let (_, out, err, status) =
            tokio::join!(write, read_bounded(stdout), read_bounded(stderr), child.wait());
        (out, err, status)
    };
    let result = tokio::time::timeout(timeout, run).await;
    let Ok(((out, out_over), (err, _), status)) = result else {
        // The child itself was killed when `run` was dropped; its descendants share its group.
        #[cfg(unix)]
        if let Some(pid) = pid {
            kill_group(pid);
        }
        return Err(format!(
            "`{program}` did not finish within {} ms and was killed",
            timeout.as_millis()
        ));
    };
    let status = status.map_err(|e| format!("waiting for `{program}`: {e}"))?;
    if !status.success() {
        let why = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        };
        let stderr = excerpt(&err);
        return Err(if stderr.is_empty() {
            format!("`{program}` {why} (no stderr)")
        } else {
            format!("`{program}` {why}: {stderr}")
        });
    }
    if out_over {
        return Err(format!("`{program}` printed more than {MAX_ANSWER_BYTES} bytes"));
    }
    parse_answer(&out, &format!("the output of `{program}`")).map_err(|e| {
        let stderr = excerpt(&err);
        if stderr.is_empty() {
            e
        } else {
            format!("{e} (stderr: {stderr})")
        }
    })
}

/// Kills every process left in the group `pgid` (best effort; the `kill` utility is POSIX).
#[cfg(unix)]
fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

async fn http_once(url: &str, input: &[u8], timeout: Duration) -> Result<Value, String> {
    http_call(url, Some(input), timeout).await
}

/// POSTs `input` as JSON to `url` (GETs it without one) and reads the JSON object answered,
/// within `timeout`.
/// The probe a hook's answer names: `{"tcp": "host:port"}` or `{"http": URL, "status": N}`
/// (`status` defaults to 200), checked as the ledger checks it.
pub fn probe_target(v: &Value) -> Result<surplus_contracts::supervision::ProbeTarget, String> {
    use surplus_contracts::supervision::ProbeTarget;
    let t = if let Some(a) = v.get("tcp") {
        let address = a.as_str().ok_or("\"tcp\" must be a string host:port")?;
        ProbeTarget::Tcp { address: address.to_owned() }
    } else if let Some(u) = v.get("http") {
        let url = u.as_str().ok_or("\"http\" must be a URL string")?;
        let status = match v.get("status") {
            None => 200,
            Some(s) => s
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("\"status\" must be an HTTP status")?,
        };
        ProbeTarget::Http { url: url.to_owned(), status }
    } else {
        return Err(
            "a probe is {\"tcp\": \"host:port\"} or {\"http\": URL, \"status\": 200}".into()
        );
    };
    t.validate()?;
    Ok(t)
}

pub(crate) async fn http_call(
    url: &str,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Value, String> {
    let target = url.to_owned();
    let body = input.map(<[u8]>::to_vec);
    let call = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let url = target;
        let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(0).build();
        let read = |resp: ureq::Response| -> Vec<u8> {
            let mut buf = Vec::new();
            let _ = resp.into_reader().take(MAX_ANSWER_BYTES + 1).read_to_end(&mut buf);
            buf
        };
        let sent = match &body {
            Some(b) => agent.post(&url).set("Content-Type", "application/json").send_bytes(b),
            None => agent.get(&url).call(),
        };
        match sent {
            Ok(resp) => {
                let buf = read(resp);
                if buf.len() as u64 > MAX_ANSWER_BYTES {
                    return Err(format!("{url} answered more than {MAX_ANSWER_BYTES} bytes"));
                }
                parse_answer(&buf, &format!("the answer of {url}"))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let buf = read(resp);
                Err(format!("{url} answered HTTP {code}: {}", excerpt(&buf)))
            }
            Err(e) => Err(format!("{url}: {e}")),
        }
    });
    // ureq's own timeout bounds the call; this one only guards against a stuck thread pool.
    match tokio::time::timeout(timeout + Duration::from_secs(5), call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("the webhook call failed: {e}")),
        Err(_) => Err(format!("{url} did not answer within {} ms", timeout.as_millis())),
    }
}

/// Both provisioning runs of one lease.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseProvisioning {
    /// The run at lease start.
    pub start: Option<Outcome>,
    /// The run at lease end.
    pub end: Option<Outcome>,
    /// The operator ended the lease early, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<OperatorNote>,
    /// The pool the lease runs on (where the node placed it, or moved it to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Its moves to other pools before maintenance, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MoveRecord>,
}

impl LeaseProvisioning {
    /// The access details the buyer has now: those of the last move that succeeded, else of
    /// the start.
    pub fn access(&self) -> Option<Value> {
        let moved =
            self.moves.iter().rev().find(|m| m.outcome.ok).and_then(|m| m.outcome.access.clone());
        moved.or_else(|| self.start.as_ref().filter(|o| o.ok).and_then(|o| o.access.clone()))
    }
}

/// One move of a lease to another pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    /// The pool it left.
    pub from: String,
    /// The pool it moved to.
    pub to: String,
    /// The hook's run.
    pub outcome: Outcome,
}

/// What the operator said when it ended a lease early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNote {
    /// Why.
    pub reason: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// The record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A record file is not what this node writes.
    #[error("{}: damaged provisioning record ({reason}); move it away to start the lease's record afresh", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A lease id that is not 64 hex digits.
    #[error("lease id {0:?} is not 64 hex digits")]
    BadLeaseId(String),
}

/// The persistent record of provisioning runs: one small JSON file per lease under
/// `DATA_DIR/provisioning/`, each replaced atomically (write, fsync, rename). Survives restarts;
/// readable with `cat` by an operator.
#[derive(Debug)]
pub struct ProvisionLog {
    dir: PathBuf,
    // Serializes read-modify-write of one record.
    lock: Mutex<()>,
    /// Leases whose start is recorded and whose end is not (read from the files at open, then
    /// kept up to date), so that the node finds the leases it must end without reading every
    /// record it ever wrote.
    open: Mutex<std::collections::BTreeSet<String>>,
    /// The pool of each lease the node placed (read from the files at open, then kept up to
    /// date).
    pools: Mutex<std::collections::HashMap<String, String>>,
}

fn check_lease_id(id: &str) -> Result<(), ProvisionError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ProvisionError::BadLeaseId(id.to_owned()))
    }
}

impl ProvisionLog {
    /// Opens (creating it if needed) the record in `data_dir/provisioning`.
    pub fn open(data_dir: &Path) -> Result<Self, ProvisionError> {
        let dir = data_dir.join("provisioning");
        std::fs::create_dir_all(&dir)
            .map_err(|source| ProvisionError::Io { path: dir.clone(), source })?;
        let log = Self {
            dir,
            lock: Mutex::new(()),
            open: Mutex::new(Default::default()),
            pools: Mutex::new(Default::default()),
        };
        let mut pools = std::collections::HashMap::new();
        let entries = std::fs::read_dir(&log.dir)
            .map_err(|source| ProvisionError::Io { path: log.dir.clone(), source })?;
        let mut open = std::collections::BTreeSet::new();
        for e in entries {
            let e = e.map_err(|source| ProvisionError::Io { path: log.dir.clone(), source })?;
            let name = e.file_name().to_string_lossy().into_owned();
            // Other files (a temporary of an interrupted write) are not records.
            let Some(id) = name.strip_suffix(".json").filter(|id| check_lease_id(id).is_ok())
            else {
                continue;
            };
            match log.read(&e.path()) {
                Ok(Some(rec)) => {
                    if rec.start.is_some() && rec.end.is_none() {
                        open.insert(id.to_owned());
                    }
                    if let Some(p) = rec.pool {
                        pools.insert(id.to_owned(), p);
                    }
                }
                Ok(None) => {}
                // Reported again whenever the lease's record is read; the node still starts.
                Err(e) => tracing::warn!(error = %e, "provisioning record skipped"),
            }
        }
        *log.open.lock().unwrap_or_else(|p| p.into_inner()) = open;
        *log.pools.lock().unwrap_or_else(|p| p.into_inner()) = pools;
        Ok(log)
    }

    /// The pool the node placed a lease on (or moved it to), if it placed it.
    pub fn pool(&self, lease_id: &str) -> Option<String> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).get(lease_id).cloned()
    }

    /// Records, durably, the pool a lease runs on.
    pub fn place(&self, lease_id: &str, pool: &str) -> Result<(), ProvisionError> {
        let path = self.path(lease_id)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.read(&path)?.unwrap_or_default();
        rec.pool = Some(pool.to_owned());
        self.write(&path, &rec)?;
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).insert(lease_id.into(), pool.into());
        Ok(())
    }

    /// Records, durably, a move's run; when it succeeded, the lease runs on `to` from now.
    pub fn record_move(
        &self,
        lease_id: &str,
        from: &str,
        to: &str,
        outcome: &Outcome,
    ) -> Result<(), ProvisionError> {
        let path = self.path(lease_id)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.read(&path)?.unwrap_or_default();
        rec.moves.push(MoveRecord { from: from.into(), to: to.into(), outcome: outcome.clone() });
        if outcome.ok {
            rec.pool = Some(to.to_owned());
        }
        self.write(&path, &rec)?;
        if outcome.ok {
            self.pools.lock().unwrap_or_else(|p| p.into_inner()).insert(lease_id.into(), to.into());
        }
        Ok(())
    }

    /// The leases whose start is recorded and whose end is not.
    pub fn open_leases(&self) -> Vec<String> {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    fn path(&self, lease_id: &str) -> Result<PathBuf, ProvisionError> {
        check_lease_id(lease_id)?;
        Ok(self.dir.join(format!("{lease_id}.json")))
    }

    fn read(&self, path: &Path) -> Result<Option<LeaseProvisioning>, ProvisionError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ProvisionError::Damaged { path: path.to_owned(), reason: e.to_string() }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ProvisionError::Io { path: path.to_owned(), source }),
        }
    }

    /// Records, durably, why the operator ended a lease early.
    pub fn note_termination(
        &self,
        lease_id: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), ProvisionError> {
        let path = self.path(lease_id)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.read(&path)?.unwrap_or_default();
        rec.terminated = Some(OperatorNote { reason: reason.to_owned(), at_ms });
        self.write(&path, &rec)
    }

    fn write(&self, path: &Path, rec: &LeaseProvisioning) -> Result<(), ProvisionError> {
        let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
        write_atomic(path, &bytes).map_err(|e| match e {
            crate::config::ConfigError::Io { file, source } => {
                ProvisionError::Io { path: file, source }
            }
            other => ProvisionError::Damaged { path: path.to_owned(), reason: other.to_string() },
        })
    }

    /// Records the outcome of a lease's start or end run (replacing an earlier one), durably.
    pub fn record(
        &self,
        lease_id: &str,
        event: Event,
        outcome: &Outcome,
    ) -> Result<(), ProvisionError> {
        let path = self.path(lease_id)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.read(&path)?.unwrap_or_default();
        match event {
            Event::Start => rec.start = Some(outcome.clone()),
            Event::End => rec.end = Some(outcome.clone()),
            // Moves go through `record_move`.
            Event::Move => return Ok(()),
        }
        self.write(&path, &rec)?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if rec.start.is_some() && rec.end.is_none() {
            open.insert(lease_id.to_owned());
        } else {
            open.remove(lease_id);
        }
        Ok(())
    }

    /// What was recorded for a lease.
    pub fn get(&self, lease_id: &str) -> Result<Option<LeaseProvisioning>, ProvisionError> {
        let path = self.path(lease_id)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.read(&path)
    }
}

/// The sample hook's work: a per-lease directory with a file describing its access.
pub fn sample_hook(dir: &Path, ev: &LeaseEvent) -> Result<Value> {
    if check_lease_id(&ev.lease_id).is_err() {
        bail!("lease_id {:?} is not 64 lowercase hex digits", ev.lease_id);
    }
    let lease_dir = dir.join(&ev.lease_id);
    match ev.event {
        Event::Start | Event::Move => {
            std::fs::create_dir_all(&lease_dir)
                .with_context(|| format!("cannot create {}", lease_dir.display()))?;
            let path = std::fs::canonicalize(&lease_dir).unwrap_or(lease_dir.clone());
            let mut access = serde_json::json!({
                "host": "127.0.0.1",
                "path": path,
                "user": format!("lease-{}", &ev.lease_id[..12]),
                "lease_id": ev.lease_id,
                "chain_id": ev.chain_id,
                "note": "devnet sample",
            });
            if let Some(buyer) = ev.lease.pointer("/fill/buyer") {
                access["buyer"] = buyer.clone();
            }
            if let Some(pool) = &ev.pool {
                access["pool"] = Value::String(pool.clone());
            }
            if let Some(from) = &ev.from_pool {
                access["moved_from"] = Value::String(from.clone());
            }
            let text = serde_json::to_string_pretty(&access)? + "\n";
            write_atomic(&lease_dir.join("access.json"), text.as_bytes())?;
            Ok(access)
        }
        Event::End => {
            match std::fs::remove_dir_all(&lease_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", lease_dir.display()))
                }
            }
            Ok(serde_json::json!({ "released": true, "lease_id": ev.lease_id }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use surplus_net::SystemClock;

    const ID: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn event(e: Event) -> LeaseEvent {
        LeaseEvent {
            event: e,
            lease: serde_json::json!({ "fill": { "buyer": "ab" }, "hours": 2 }),
            lease_id: ID.into(),
            chain_id: "test".into(),
            pool: None,
            from_pool: None,
            attributes: Default::default(),
        }
    }

    fn exec(script: &str, retries: u32, timeout_ms: u64) -> Hook {
        Hook::Exec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_millis(timeout_ms),
            retries,
            backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn exec_hook_gets_the_event_and_returns_its_answer() {
        // `cat` echoes the event back: the event is a JSON object, so it is the access.
        let out = exec("cat", 0, 10_000).run(&event(Event::Start), &SystemClock).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.attempts, 1);
        let access = out.access.unwrap();
        assert_eq!(access["event"], "start");
        assert_eq!(access["lease_id"], ID);
        assert_eq!(access["lease"]["hours"], 2);
        assert!(out.finished_ms > 0);
        // A hook that ignores its input still works.
        let out = exec("echo '{\"host\": \"10.0.0.9\"}'", 0, 10_000)
            .run(&event(Event::End), &SystemClock)
            .await;
        assert_eq!(out.access.unwrap()["host"], "10.0.0.9");
    }

    #[tokio::test]
    async fn a_failing_command_is_retried_then_the_failure_is_reported() {
        let out =
            exec("echo boom >&2; exit 3", 2, 10_000).run(&event(Event::Start), &SystemClock).await;
        assert!(!out.ok);
        assert_eq!(out.attempts, 3);
        assert!(out.access.is_none());
        let e = out.error.unwrap();
        assert!(
            e.contains("3 attempt(s) failed") && e.contains("status 3") && e.contains("boom"),
            "{e}"
        );
        // Fails once, then succeeds.
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("tried");
        let script = format!(
            "if [ -e '{0}' ]; then echo '{{\"ok\": 1}}'; else touch '{0}'; exit 1; fi",
            flag.display()
        );
        let out = exec(&script, 3, 10_000).run(&event(Event::Start), &SystemClock).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.attempts, 2);
        // A missing program.
        let hook = Hook::Exec {
            command: vec!["/nonexistent/provision".into()],
            timeout: Duration::from_secs(5),
            retries: 0,
            backoff: Duration::ZERO,
        };
        let out = hook.run(&event(Event::Start), &SystemClock).await;
        assert!(out.error.unwrap().contains("cannot start `/nonexistent/provision`"));
    }

    #[tokio::test]
    async fn invalid_answers_are_failures() {
        for (script, says) in [
            ("echo not json", "not a JSON object"),
            ("echo '[1, 2]'", "not an object"),
            ("true", "is empty"),
            ("echo '{\"a\": 1}'; echo trailing", "not a JSON object"),
        ] {
            let out = exec(script, 0, 10_000).run(&event(Event::Start), &SystemClock).await;
            assert!(!out.ok, "{script}");
            let e = out.error.unwrap();
            assert!(e.contains(says), "{script}: {e}");
        }
    }

    #[cfg(target_os = "linux")]
    fn alive(pid: u32) -> bool {
        // A zombie is dead for our purpose (nobody may reap it in a container).
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s) => !s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with(['Z', 'X'])),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The shell starts a sleeping child and waits for it.
        let script = format!("sleep 600 & echo $$ $! > '{}'; wait", pids.display());
        let out = exec(&script, 1, 300).run(&event(Event::Start), &SystemClock).await;
        assert!(!out.ok);
        assert_eq!(out.attempts, 2);
        let e = out.error.unwrap();
        assert!(e.contains("did not finish within 300 ms and was killed"), "{e}");
        #[cfg(target_os = "linux")]
        {
            let text = std::fs::read_to_string(&pids).unwrap();
            let ids: Vec<u32> = text.split_whitespace().map(|s| s.parse().unwrap()).collect();
            assert_eq!(ids.len(), 2);
            // Killing is asynchronous: poll, bounded.
            let mut gone = false;
            for _ in 0..200 {
                if ids.iter().all(|p| !alive(*p)) {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(gone, "the shell and its sleeping child are killed");
        }
    }

    /// Serves `answers` (status, body) to successive POSTs on 127.0.0.1, recording each body.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/provision", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut buf = vec![0; len];
                r.read_exact(&mut buf).unwrap();
                bodies.push(String::from_utf8(buf).unwrap());
                let mut w = stream;
                write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            bodies
        });
        (url, handle)
    }

    fn http(url: &str, retries: u32) -> Hook {
        Hook::Http {
            url: url.into(),
            timeout: Duration::from_secs(10),
            retries,
            backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn http_hook_posts_the_event_and_retries_after_a_500() {
        let (url, server) =
            serve(vec![(500, "{\"error\": \"busy\"}"), (200, "{\"host\": \"gw1\"}")]);
        let out = http(&url, 2).run(&event(Event::Start), &SystemClock).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.attempts, 2);
        assert_eq!(out.access.unwrap()["host"], "gw1");
        let bodies = server.join().unwrap();
        assert_eq!(bodies.len(), 2);
        let sent: LeaseEvent = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(sent, event(Event::Start));

        let (url, server) = serve(vec![(500, "overloaded"), (200, "not json")]);
        let out = http(&url, 1).run(&event(Event::End), &SystemClock).await;
        assert!(!out.ok);
        assert!(out.error.as_deref().unwrap().contains("not a JSON object"), "{out:?}");
        server.join().unwrap();

        let (url, server) = serve(vec![(503, "down")]);
        let out = http(&url, 0).run(&event(Event::End), &SystemClock).await;
        let e = out.error.unwrap();
        assert!(e.contains("HTTP 503") && e.contains("down"), "{e}");
        server.join().unwrap();

        // Nobody listening.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = http(&format!("http://127.0.0.1:{port}/x"), 0)
            .run(&event(Event::End), &SystemClock)
            .await;
        assert!(!out.ok);
    }

    #[tokio::test]
    async fn no_hook_is_an_immediate_success() {
        let out = Hook::None.run(&event(Event::Start), &SystemClock).await;
        assert!(out.ok);
        assert_eq!(out.attempts, 0);
    }

    #[test]
    fn the_log_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Outcome {
            ok: true,
            attempts: 1,
            access: Some(serde_json::json!({"host": "h"})),
            error: None,
            finished_ms: 5,
        };
        let failed = Outcome {
            ok: false,
            attempts: 4,
            access: None,
            error: Some("x".into()),
            finished_ms: 9,
        };
        {
            let log = ProvisionLog::open(dir.path()).unwrap();
            assert_eq!(log.get(ID).unwrap(), None);
            log.record(ID, Event::Start, &ok).unwrap();
            assert_eq!(log.open_leases(), vec![ID.to_owned()]);
            log.record(ID, Event::End, &failed).unwrap();
            assert!(log.open_leases().is_empty());
            let other = "b".repeat(64);
            log.record(&other, Event::Start, &ok).unwrap();
        }
        let log = ProvisionLog::open(dir.path()).unwrap();
        // Started and not ended, read back from the records.
        assert_eq!(log.open_leases(), vec!["b".repeat(64)]);
        let rec = log.get(ID).unwrap().unwrap();
        assert_eq!(rec.start, Some(ok.clone()));
        assert_eq!(rec.end, Some(failed));
        // A later run replaces the earlier one of the same event.
        log.record(ID, Event::End, &ok).unwrap();
        assert_eq!(log.get(ID).unwrap().unwrap().end, Some(ok));
        // Ids that could escape the directory are refused.
        assert!(matches!(log.get("../../etc/passwd"), Err(ProvisionError::BadLeaseId(_))));
        // A damaged record is reported, naming the file.
        std::fs::write(dir.path().join("provisioning").join(format!("{ID}.json")), b"{").unwrap();
        let e = log.get(ID).unwrap_err().to_string();
        assert!(e.contains(ID) && e.contains("damaged"), "{e}");
        // It does not stop the log from opening.
        assert_eq!(ProvisionLog::open(dir.path()).unwrap().open_leases(), vec!["b".repeat(64)]);
    }

    #[test]
    fn the_sample_hook_creates_and_removes_the_lease_directory() {
        let dir = tempfile::tempdir().unwrap();
        let access = sample_hook(dir.path(), &event(Event::Start)).unwrap();
        assert_eq!(access["user"], "lease-001122334455");
        assert_eq!(access["buyer"], "ab");
        let file = dir.path().join(ID).join("access.json");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written, access);
        // Idempotent: a retried start gives the same answer.
        assert_eq!(sample_hook(dir.path(), &event(Event::Start)).unwrap(), access);
        // A move answers the new pool's access details, and the file says them too.
        let mut mv = event(Event::Move).on(Some("pve-b".into()));
        mv.from_pool = Some("pve-a".into());
        let moved = sample_hook(dir.path(), &mv).unwrap();
        assert_eq!(
            (moved["pool"].as_str(), moved["moved_from"].as_str()),
            (Some("pve-b"), Some("pve-a"))
        );
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written, moved);
        // The log keeps where the lease runs, across a reopening; a failed move changes nothing.
        let log_dir = tempfile::tempdir().unwrap();
        let log = ProvisionLog::open(log_dir.path()).unwrap();
        log.place(ID, "pve-a").unwrap();
        let ok = |access: Option<Value>| Outcome {
            ok: access.is_some(),
            attempts: 1,
            access,
            error: None,
            finished_ms: 1,
        };
        log.record(ID, Event::Start, &ok(Some(access.clone()))).unwrap();
        log.record_move(ID, "pve-a", "pve-c", &ok(None)).unwrap();
        assert_eq!(log.pool(ID).as_deref(), Some("pve-a"));
        log.record_move(ID, "pve-a", "pve-b", &ok(Some(moved.clone()))).unwrap();
        assert_eq!(log.pool(ID).as_deref(), Some("pve-b"));
        let again = ProvisionLog::open(log_dir.path()).unwrap();
        assert_eq!(again.pool(ID).as_deref(), Some("pve-b"));
        let rec = again.get(ID).unwrap().unwrap();
        assert_eq!((rec.moves.len(), rec.access()), (2, Some(moved)));
        let end = sample_hook(dir.path(), &event(Event::End)).unwrap();
        assert_eq!(end["released"], true);
        assert!(!dir.path().join(ID).exists());
        // Ending twice is fine; a bad id is refused.
        sample_hook(dir.path(), &event(Event::End)).unwrap();
        let mut bad = event(Event::Start);
        bad.lease_id = "../x".into();
        assert!(sample_hook(dir.path(), &bad).is_err());
    }
}
