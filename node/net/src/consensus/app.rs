//! The application loop: answers the engine's 12 messages from our chain.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamContent;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, Context, ExtendedCommitCertificate, ExtendedCommitSignature, Round, Validity,
};
use malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use malachitebft_signing_ed25519::Signature;
use surplus_ledger::Auth;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::chain::{Chain, Checked};
use super::context::{Address, Ctx, Height, ProposalPart, ValidatorSet, Value, ValueId};
use super::pace::{self, Pace};
use super::signing::ProvenPeers;
use super::{Committed, Pool, Settings};

/// Most proposal parts kept for heights we have not reached.
const MAX_FUTURE_PARTS: usize = 256;
/// How far ahead a proposal part may be and still be kept.
const MAX_FUTURE_HEIGHTS: u64 = 8;

/// How often the engine's network is asked which peers take this validator's consensus
/// messages.
const REACH_EVERY: Duration = Duration::from_secs(1);
/// How long a validator may have peers none of which takes its consensus messages before it
/// counts as cut off ([`Status::cut_off`]). A new connection learns the peer's subscriptions
/// and joins the mesh within a gossip heartbeat or two.
pub const CUT_OFF_GRACE: Duration = Duration::from_secs(4);
/// The gossip topic of consensus messages (the engine's default channel names).
const CONSENSUS_TOPIC: &str = "/consensus";

/// Whether the engine's network reaches any peer with its consensus messages: `None` when it
/// has no peer (or does not answer), else whether some peer is in its consensus mesh.
async fn consensus_reach(
    requests: &mpsc::Sender<malachitebft_app_channel::NetworkRequest>,
) -> Option<bool> {
    let dump = tokio::time::timeout(
        REACH_EVERY,
        malachitebft_app_channel::NetworkRequest::dump_state(requests),
    )
    .await
    .ok()?
    .ok()??;
    if dump.peers.is_empty() {
        return None;
    }
    Some(dump.peers.values().any(|p| p.topics.contains(CONSENSUS_TOPIC)))
}

/// A live view of the engine for the node's status endpoint.
#[derive(Debug, Default)]
pub struct Status {
    height: AtomicU64,
    round: AtomicU64,
    invalid_proposals: AtomicUsize,
    /// Committed blocks sent to the node and not yet taken.
    queued_commits: AtomicUsize,
    /// Peers connected to the engine's network, none of them known to take its consensus
    /// messages, for [`CUT_OFF_GRACE`] or longer.
    cut_off: std::sync::atomic::AtomicBool,
    /// In-process engine restarts ([`super::Running::reconnect`]).
    restarts: AtomicU64,
}

impl Status {
    /// Committed height.
    #[cfg(test)]
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }
    pub(super) fn set_height(&self, h: u64) {
        self.height.store(h, Ordering::Relaxed);
    }
    /// True when this validator's engine has had peers for [`CUT_OFF_GRACE`] and none of them
    /// is known to subscribe to its consensus messages: what it votes and proposes reaches no
    /// one. Gossipsub learns a peer's subscriptions only on the first connection between the
    /// two, so a peer that kept an old connection across a partition never sends them again;
    /// [`super::Running::reconnect`] is the remedy.
    pub fn cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Relaxed)
    }
    /// In-process engine restarts since the node started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub(super) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    /// Committed blocks waiting for the node to take them (at most
    /// [`super::COMMIT_QUEUE`]).
    pub fn queued_commits(&self) -> usize {
        self.queued_commits.load(Ordering::Relaxed)
    }
    /// The node took a committed block from the queue.
    pub fn took_commit(&self) {
        let _ = self
            .queued_commits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    /// Round of the height in progress, and proposals voted invalid since start.
    pub fn round_and_invalid(&self) -> (u64, usize) {
        (self.round.load(Ordering::Relaxed), self.invalid_proposals.load(Ordering::Relaxed))
    }
}

pub(super) struct App {
    pub(super) chain: Chain,
    pub(super) settings: Settings,
    address: Address,
    pool: Arc<dyn Pool>,
    commits: mpsc::Sender<Committed>,
    status: Arc<Status>,
    /// Parts for heights above ours, by height, with their publisher.
    future: BTreeMap<u64, Vec<(ProposalPart, PeerId)>>,
    /// The consensus peer id of each validator, derived from its key (parts are only taken
    /// from validators).
    validator_peers: std::collections::HashMap<PeerId, Address>,
    /// Peer ids validators proved their own since (after an engine restart).
    proven: ProvenPeers,
    last_commit: Instant,
    /// When this node started each of the last few heights: the batch interval runs from the
    /// start of the height before, so that a block's own time counts in it.
    started: Arc<std::sync::Mutex<BTreeMap<u64, Instant>>>,
    /// The highest height a validator's proposal part came for (a validator that does not
    /// propose round 0 of the next height starts it once the proposer's parts arrive).
    part_height: Arc<AtomicU64>,
    /// Signalled when [`App::part_height`] rises.
    part_came: Arc<Notify>,
    /// Heights whose value came from sync: the node is catching up and must not wait.
    synced_heights: std::collections::BTreeSet<u64>,
    /// Whether this node votes (a follower never needs to wait before a height).
    validator: bool,
    /// Ids of the entries of the blocks committed last, oldest first (at most
    /// [`RECENT_COMMITS`] blocks). The node takes an entry out of its pool only once it applies
    /// the block, which may lag this chain by the commits queued for it; until then the pool
    /// still offers the entry, and a block built from it would refuse the entry as already
    /// applied and report it dropped although it is committed.
    recent: VecDeque<Arc<HashSet<surplus_ledger::Hash>>>,
    /// The last decided block being stored, then handed to the node.
    delivering: Option<tokio::task::JoinHandle<Result<()>>>,
    /// This node's execution time per user entry, which bounds its proposals.
    pace: Pace,
}

/// Blocks whose entries [`App::value_to_propose`] leaves out of the pool's: those the node may
/// not have applied yet (the commit queue, and the one it is applying).
const RECENT_COMMITS: usize = super::COMMIT_QUEUE + 1;

/// A value for the engine, named by the block's header hash.
fn proposed(
    height: Height,
    round: Round,
    proposer: Address,
    id: ValueId,
    valid: bool,
) -> ProposedValue<Ctx> {
    ProposedValue {
        height,
        round,
        valid_round: Round::Nil,
        proposer,
        value: Value(id.0),
        validity: Validity::from_bool(valid),
    }
}

impl App {
    pub(super) fn new(
        chain: Chain,
        settings: Settings,
        address: Address,
        pool: Arc<dyn Pool>,
        commits: mpsc::Sender<Committed>,
        status: Arc<Status>,
        proven: ProvenPeers,
    ) -> Self {
        let validator_peers = peers_of(&chain.validators);
        let validator = chain.validators.index_of(&address).is_some();
        Self {
            chain,
            settings,
            address,
            pool,
            commits,
            status,
            future: BTreeMap::new(),
            validator_peers,
            proven,
            last_commit: Instant::now(),
            started: Default::default(),
            part_height: Default::default(),
            part_came: Default::default(),
            synced_heights: Default::default(),
            validator,
            recent: VecDeque::new(),
            delivering: None,
            pace: Pace::default(),
        }
    }

    /// The batch interval in force: governance's (`docs/governance.md`), else this node's.
    fn batch_interval(&self) -> Duration {
        self.chain
            .state()
            .consensus_params()
            .map_or(self.settings.batch_interval, |c| Duration::from_millis(c.batch_interval_ms))
    }

    /// How long after the last block the next batch closes, with `waiting` entries in the pool:
    /// the batch interval in force, or its lower bound once they fill a proposal
    /// ([`pace::interval`]).
    /// The time a block's execution may take ([`pace::budget`]).
    fn budget(&self) -> Duration {
        pace::budget(self.batch_interval(), self.settings.timeouts.propose)
    }

    fn interval_now(&self, waiting: usize) -> Duration {
        let (max_entries, _) = self.chain.block_limits();
        let full = self.pace.limit(max_entries, self.budget());
        pace::interval(self.settings.min_batch_interval, self.batch_interval(), waiting, full)
    }

    fn params(&self) -> HeightParams<Ctx> {
        HeightParams::new(self.chain.validators.clone(), self.settings.timeouts, None)
    }

    fn next_height(&self) -> Height {
        Height(self.chain.height() + 1)
    }

    /// When time alone next calls for a block: the earliest end or hourly settlement of an
    /// active lease (ms since the epoch).
    fn next_due_ms(&self) -> Option<u64> {
        self.chain.state().next_due_ms()
    }

    /// Answers the engine until it stops (an error) or `stop` fires: then gives the
    /// application back, between two messages, for [`super::Running::reconnect`].
    pub(super) async fn run(
        mut self,
        mut channels: Channels<Ctx>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<App> {
        let mut reach = tokio::time::interval(REACH_EVERY);
        reach.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The network's answer is awaited beside the engine's messages, never in their way.
        let mut probe: Option<
            std::pin::Pin<Box<dyn std::future::Future<Output = Option<bool>> + Send>>,
        > = None;
        let mut unreached_since: Option<Instant> = None;
        self.status.cut_off.store(false, Ordering::Relaxed);
        loop {
            let msg = tokio::select! {
                _ = &mut stop => {
                    self.delivered().await?;
                    return Ok(self);
                }
                _ = reach.tick(), if self.validator && probe.is_none() && super::reach_is_known() => {
                    let requests = channels.net_requests.clone();
                    probe = Some(Box::pin(async move { consensus_reach(&requests).await }));
                    continue;
                }
                reached = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                    probe = None;
                    self.reached(reached, &mut unreached_since);
                    continue;
                }
                msg = channels.consensus.recv() => msg,
            };
            let Some(msg) = msg else { break };
            if let Err(e) = self.handle(msg, &mut channels).await {
                tracing::error!(error = %format!("{e:#}"), "consensus application error");
                return Err(e);
            }
        }
        // What was decided is stored and handed over before the error.
        self.delivered().await?;
        Err(anyhow!("the consensus engine stopped"))
    }

    /// Takes in what the network said of this validator's reach ([`consensus_reach`]).
    fn reached(&self, reached: Option<bool>, unreached_since: &mut Option<Instant>) {
        let cut = match reached {
            Some(false) => {
                unreached_since.get_or_insert_with(Instant::now).elapsed() >= CUT_OFF_GRACE
            }
            _ => {
                *unreached_since = None;
                false
            }
        };
        if cut && !self.status.cut_off() {
            tracing::warn!("the consensus engine has peers but none takes its messages");
        }
        self.status.cut_off.store(cut, Ordering::Relaxed);
    }

    async fn handle(&mut self, msg: AppMsg<Ctx>, channels: &mut Channels<Ctx>) -> Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let h = self.next_height();
                tracing::info!(height = h.0, "consensus ready");
                let _ = reply.send((h, self.params()));
            }
            AppMsg::StartedRound { height, round, reply_value, .. } => {
                self.status.round.store(round.as_i64().max(0) as u64, Ordering::Relaxed);
                self.take_future_parts(height.0).await;
                let mut values = Vec::new();
                for v in self.chain.undecided_at(height.0, Some(round.as_i64()))? {
                    if let Some((id, proposer, valid)) = self.verdict(height.0, v) {
                        values.push(proposed(height, round, proposer, id, valid));
                    }
                }
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue { height, round, timeout, reply } => {
                let checked = self.value_to_propose(height, round, timeout).await?;
                let id = ValueId(checked.block.header.hash());
                let bytes = Bytes::from(checked.block.encode());
                // The parts go out first, so that the others check the block while it is
                // stored here: they carry no consensus signature. The engine signs the
                // proposal after the reply, once the value is stored, so a crash in between can
                // only make this node propose another block at this round, never sign two.
                self.publish(channels, height, round, self.address, bytes.clone()).await?;
                tokio::task::block_in_place(|| {
                    self.chain.store_proposal(height.0, round.as_i64(), id, self.address, &bytes)
                })?;
                let _ = reply.send(LocallyProposedValue::new(height, round, Value(id.0)));
            }
            AppMsg::ReceivedProposalPart { from, published_by, part, reply } => {
                let value = match part.content {
                    StreamContent::Data(p) => {
                        self.received_part(p, published_by.unwrap_or(from)).await?
                    }
                    StreamContent::Fin => None,
                };
                let _ = reply.send(value);
            }
            AppMsg::RestreamProposal { height, value_id, .. } => {
                // Replay the parts as first streamed: their round and proposer, as upstream does.
                for v in self.chain.undecided_with(height.0, &value_id)? {
                    let (round, bytes) = (v.1, Bytes::from(v.4.clone()));
                    if let Some((_, proposer, true)) = self.verdict(height.0, v) {
                        let round = u32::try_from(round).map_or(Round::Nil, Round::new);
                        self.publish(channels, height, round, proposer, bytes).await?;
                        break;
                    }
                }
            }
            AppMsg::Decided { certificate, reply, .. } => {
                // The block before is stored and with the node first: blocks reach it in
                // order, and when it is behind the engine waits here (bounded).
                self.delivered().await?;
                if let Some((mut c, storing)) = self.decided(&certificate)? {
                    c.synced = self.synced_heights.contains(&certificate.height.0);
                    // Stored while the next height starts, handed to the node once durable;
                    // the signer signs nothing at the next height before that.
                    let (commits, status) = (self.commits.clone(), self.status.clone());
                    let env = self.settings.env.clone();
                    self.delivering = Some(self.settings.env.spawn(async move {
                        env.spawn_blocking(move || storing.sync())
                            .await
                            .map_err(|e| anyhow!("storing a block: {e}"))??;
                        if commits.send(c).await.is_ok() {
                            status.queued_commits.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    }));
                }
                let _ = reply.send(());
            }
            AppMsg::Finalized { certificate, reply, .. } => {
                let next = certificate.height.0 + 1;
                tracing::debug!(
                    height = certificate.height.0,
                    ours = self.chain.height(),
                    "finalized"
                );
                if self.chain.height() + 1 != next {
                    // The decision did not commit (should not happen: Decided commits or fails).
                    let _ = reply.send(Next::Restart(self.next_height(), self.params()));
                    return Ok(());
                }
                self.follow_set_change();
                let catching_up = self.synced_heights.remove(&certificate.height.0);
                self.synced_heights.retain(|h| *h > certificate.height.0);
                if catching_up || !self.validator {
                    mark_started(&self.started, next);
                    let _ = reply.send(Next::Start(Height(next), self.params()));
                } else {
                    self.wait_then_start(Height(next), reply);
                }
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let from = range.start().0.max(1);
                let to = range.end().0.min(self.chain.height()).min(from.saturating_add(15));
                let mut values = Vec::new();
                for h in from..=to {
                    match tokio::task::block_in_place(|| self.chain.decided(h)) {
                        Ok(Some(block)) => values.push(self.raw_decided(block)),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(height = h, error = %e, "cannot serve a stored block");
                            break;
                        }
                    }
                }
                let _ = reply.send(values);
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(self.chain.first_block()));
            }
            AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                let outcome = self.synced(height, round, proposer, &value_bytes)?;
                let _ = reply.send(outcome);
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
        }
        Ok(())
    }

    /// The block to propose: the same one again after a restart, else a fresh one built from
    /// the pool once the batch interval has passed.
    async fn value_to_propose(
        &mut self,
        height: Height,
        _round: Round,
        timeout: Duration,
    ) -> Result<Checked> {
        if let Some(id) = self.chain.own_at(height.0)? {
            if let Some(bytes) = self.chain.undecided_block(height.0, &id)? {
                if let Ok(c) = tokio::task::block_in_place(|| self.chain.check(&bytes, None)) {
                    return Ok(c);
                }
            }
        }
        // Wait for the batch to fill, but never past half the time the engine gives us.
        let deadline = Instant::now() + timeout / 2;
        let ready_at = self.batch_start(height.0) + self.interval_now(self.pool.waiting());
        let wait_until = ready_at.min(deadline);
        if Instant::now() < wait_until {
            tokio::time::sleep_until(wait_until).await;
        }
        let (max_entries, max_bytes) = self.chain.block_limits();
        let paced = self.pace.limit(max_entries, self.budget());
        if paced < max_entries {
            tracing::debug!(limit = paced, per_entry = ?self.pace.per_entry(),
                "proposal paced below the block limit");
        }
        let max_entries = paced;
        let skip = super::Skip(self.recent.iter().cloned().collect());
        let user = self.pool.pending(max_entries, max_bytes, skip).await;
        let started = Instant::now();
        let built = tokio::task::block_in_place(|| {
            self.chain.build(&user, self.settings.env.now_ms(), self.address)
        })?;
        self.pace.record(user_entries(&built.block), started.elapsed());
        // Entries the state machine refused will never be included: drop them from the pool.
        let refused: Vec<(surplus_ledger::Hash, surplus_contracts::Refusal)> = built
            .applied
            .refused
            .iter()
            .filter_map(|(i, r)| user.get(*i).map(|e| (e.id(), r.clone())))
            .collect();
        if !refused.is_empty() {
            tracing::info!(count = refused.len(), "entries the state machine refused");
            self.pool.refused(refused).await;
        }
        Ok(built)
    }

    async fn publish(
        &self,
        channels: &mut Channels<Ctx>,
        height: Height,
        round: Round,
        proposer: Address,
        block: Bytes,
    ) -> Result<()> {
        let mut id = Vec::with_capacity(44);
        id.extend_from_slice(&height.0.to_be_bytes());
        id.extend_from_slice(&(round.as_i64() as u32).to_be_bytes());
        id.extend_from_slice(&self.address.0 .0[..8]);
        id.extend_from_slice(&proposer.0 .0[..8]);
        let stream_id = StreamId::new(Bytes::from(id));
        let part = ProposalPart { height, round, proposer, block };
        for msg in [
            StreamMessage::new(stream_id.clone(), 0, StreamContent::Data(part)),
            StreamMessage::new(stream_id, 1, StreamContent::Fin),
        ] {
            channels
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .map_err(|_| anyhow!("the consensus network stopped"))?;
        }
        Ok(())
    }

    async fn take_future_parts(&mut self, height: u64) {
        let stale: Vec<u64> = self.future.range(..height).map(|(h, _)| *h).collect();
        for h in stale {
            self.future.remove(&h);
        }
        if let Some(parts) = self.future.remove(&height) {
            for (p, publisher) in parts {
                if let Err(e) = self.received_part(p, publisher).await {
                    tracing::warn!(error = %e, "a buffered proposal part failed");
                }
            }
        }
    }

    /// After a block that changed the validator set: parts are taken from the new set's
    /// validators, and this node waits before a height only while it is one of them. (Whether
    /// the engine itself signs votes was fixed when it started: a node that joins or leaves the
    /// set votes, or stops, from its next engine start.)
    fn follow_set_change(&mut self) {
        let addresses = self.validator_peers.values().copied().collect::<HashSet<_>>();
        let now: HashSet<Address> =
            self.chain.validators.validators.iter().map(|v| v.address).collect();
        if addresses != now {
            self.validator_peers = peers_of(&self.chain.validators);
            self.validator = self.chain.validators.index_of(&self.address).is_some();
            self.proven.set_validators(now.iter().map(|a| a.0 .0));
            tracing::info!(
                height = self.chain.height(),
                validators = self.chain.validators.validators.len(),
                this_node = self.validator,
                "the validator set changed"
            );
        }
    }

    /// The validator that publishes under `peer`: by the peer id derived from its key, or by
    /// one it proved its own.
    fn validator_of(&self, peer: &PeerId) -> Option<Address> {
        if let Some(a) = self.validator_peers.get(peer) {
            return Some(*a);
        }
        let key = self.proven.key_of(&peer.to_bytes())?;
        self.chain.validators.validators.iter().map(|v| v.address).find(|a| a.0 .0 == key)
    }

    /// Checks a proposal part's block; a complete value is returned to the engine.
    ///
    /// Parts are taken only from validators. The block is stored as received while it is
    /// checked (never over a value already known valid under its id); one that does not
    /// re-execute is voted invalid only when its own proposer published it (a relayed or
    /// tampered copy of a good header must not poison that header's id).
    async fn received_part(
        &mut self,
        part: ProposalPart,
        publisher: PeerId,
    ) -> Result<Option<ProposedValue<Ctx>>> {
        let Some(publisher_addr) = self.validator_of(&publisher) else {
            tracing::debug!(%publisher, "proposal part from a non-validator: ignored");
            return Ok(None);
        };
        let next = self.chain.height() + 1;
        if self.part_height.fetch_max(part.height.0, Ordering::Relaxed) < part.height.0 {
            self.part_came.notify_waiters();
        }
        if part.height.0 > next {
            let queued: usize = self.future.values().map(Vec::len).sum();
            let from_this: usize =
                self.future.values().flatten().filter(|(_, p)| *p == publisher).count();
            if part.height.0 <= next + MAX_FUTURE_HEIGHTS
                && queued < MAX_FUTURE_PARTS
                && from_this < MAX_FUTURE_PARTS / self.validator_peers.len().max(1)
            {
                self.future.entry(part.height.0).or_default().push((part, publisher));
            }
            return Ok(None);
        }
        if part.height.0 < next {
            return Ok(None);
        }
        let Ok(header) = surplus_ledger::Block::decode_header(&part.block) else {
            return Ok(None);
        };
        if header.proposer != part.proposer.0 {
            tracing::warn!(height = next, "proposal part names another proposer");
            return Ok(None);
        }
        // Stored (durably: the engine records what it is told) while it is checked.
        let (id, round) = (ValueId(header.hash()), part.round.as_i64());
        let (writer, proposer, block) = (self.chain.writer(), part.proposer, part.block.clone());
        let write = self
            .settings
            .env
            .spawn_blocking(move || writer.write_unchecked((next, round, id), proposer, &block));
        let (started, executes) = (Instant::now(), !self.chain.has_checked(&id));
        let checked = tokio::task::block_in_place(|| {
            self.chain.check(&part.block, Some(self.settings.env.now_ms()))
        });
        if let (Ok(c), true) = (&checked, executes) {
            self.pace.record(user_entries(&c.block), started.elapsed());
        }
        let written = write.await.map_err(|e| anyhow!("storing a proposal: {e}"));
        let valid = match checked {
            Ok(_) => true,
            Err(super::chain::Invalid::Decode(_)) => return written?.map(|()| None),
            Err(e) if publisher_addr != part.proposer => {
                tracing::debug!(height = next, error = %e, "relayed block fails: ignored");
                return written?.map(|()| None);
            }
            Err(e) => {
                tracing::warn!(height = next, round = %part.round, error = %e,
                    "invalid proposal: voting against it");
                self.status.invalid_proposals.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        written??;
        self.chain.set_validity(next, round, id, valid)?;
        Ok(Some(proposed(part.height, part.round, part.proposer, id, valid)))
    }

    /// The value, proposer and validity of an undecided value read back from disk. A value
    /// stored before its check finished whose verdict was lost (a crash) is checked again; if
    /// it fails it is left out, as if never received (it may have been relayed, not proposed).
    fn verdict(
        &mut self,
        height: u64,
        v: super::chain::Undecided,
    ) -> Option<(ValueId, Address, bool)> {
        let (id, round, proposer, valid, bytes) = v;
        if let Some(valid) = valid {
            return Some((id, proposer, valid));
        }
        let now = self.settings.env.now_ms();
        let checked = tokio::task::block_in_place(|| self.chain.check(&bytes, Some(now)));
        if !checked.is_ok_and(|c| c.block.header.proposer == proposer.0) {
            return None;
        }
        if let Err(e) = self.chain.set_validity(height, round, id, true) {
            tracing::warn!(height, error = %e, "cannot record a verdict");
        }
        Some((id, proposer, true))
    }

    /// Waits until the last decided block is stored and handed to the node.
    async fn delivered(&mut self) -> Result<()> {
        match self.delivering.take() {
            Some(task) => task.await.map_err(|e| anyhow!("storing a block: {e}"))?,
            None => Ok(()),
        }
    }

    fn decided(
        &mut self,
        cert: &CommitCertificate<Ctx>,
    ) -> Result<Option<(Committed, super::chain::Storing)>> {
        let height = cert.height.0;
        if height <= self.chain.height() {
            return Ok(None);
        }
        let sigs: Vec<(Address, [u8; 64])> =
            cert.commit_signatures.iter().map(|s| (s.address, s.signature.to_bytes())).collect();
        let round = cert.round.as_u32().unwrap_or(0);
        let (checked, storing) = tokio::task::block_in_place(|| {
            self.chain.commit_deferred(height, cert.value_id, round, &sigs)
        })?;
        let user = checked.block.entries.iter().filter(|e| matches!(e.auth, Auth::Signed { .. }));
        let user: HashSet<_> = user.map(|e| e.id()).collect();
        self.pool.decided(height, user.len());
        self.recent.push_back(Arc::new(user));
        while self.recent.len() > RECENT_COMMITS {
            self.recent.pop_front();
        }
        self.last_commit = Instant::now();
        self.status.set_height(height);
        tracing::info!(
            height,
            entries = checked.block.entries.len(),
            hash = %hex::encode(&checked.block.header.hash()[..6]),
            paced = self.pace.limit(self.chain.block_limits().0, self.budget()),
            "committed"
        );
        let committed = Committed {
            block: checked.block,
            ended: Arc::new(checked.applied.ended.clone()),
            outcome: Arc::new(checked.applied.outcome.clone()),
            state: Arc::new(checked.maker.state),
            committed_ms: self.settings.env.now_ms(),
            synced: false,
        };
        Ok(Some((committed, storing)))
    }

    /// Where the batch of `height` began: when this node started the height before (the batch
    /// interval runs from there, so that a block that took long to agree and commit is not
    /// followed by a full interval more), or, not knowing it, the last commit.
    fn batch_start(&self, height: u64) -> Instant {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let before = height.checked_sub(1).and_then(|h| started.get(&h).copied());
        before.map_or(self.last_commit, |b| b.min(self.last_commit))
    }

    /// Replies `Start(next)` when [`pace::Start`] says (round 0's proposer once there is work
    /// and the batch interval has passed, another validator once the proposal comes; either at
    /// the idle heartbeat), without holding up the loop (sync must keep being served).
    fn wait_then_start(&self, next: Height, reply: malachitebft_app_channel::Reply<Next<Ctx>>) {
        let pool = self.pool.clone();
        let params = self.params();
        let batch = self.batch_interval();
        let heartbeat = self.settings.idle_heartbeat.max(batch);
        // The interval shortens to its lower bound while a full proposal waits.
        let (max_entries, _) = self.chain.block_limits();
        let full = self.pace.limit(max_entries, self.budget());
        self.pool.room(full);
        let min = self.settings.min_batch_interval;
        let since = self.last_commit;
        let batch_from = self.batch_start(next.0);
        let started = self.started.clone();
        let due = self.next_due_ms();
        let env = self.settings.env.clone();
        let proposes = !self.chain.validators.validators.is_empty()
            && Ctx.select_proposer(&self.chain.validators, next, Round::new(0)).address
                == self.address;
        let start = pace::Start { proposes, min, max: batch, heartbeat, full };
        let (part_height, part_came) = (self.part_height.clone(), self.part_came.clone());
        self.settings.env.spawn(async move {
            let notify = pool.notify();
            loop {
                // Registered before looking, so that an arrival or a part between the look
                // and the wait still wakes it (`notify_waiters` wakes only registered waiters).
                let arrived = notify.notified();
                let part = part_came.notified();
                tokio::pin!(arrived, part);
                arrived.as_mut().enable();
                part.as_mut().enable();
                let seen = pace::Seen {
                    proposal: part_height.load(Ordering::Relaxed) >= next.0,
                    since_commit: since.elapsed(),
                    gathered: batch_from.elapsed(),
                    work: pool.has_work() || due.is_some_and(|d| env.now_ms() >= d),
                    waiting: pool.waiting(),
                };
                if start.now(&seen) {
                    break;
                }
                // Woken by each arrival (a batch that fills up closes then) and by the
                // proposal's first part.
                let woken = async {
                    tokio::select! {
                        _ = arrived => {}
                        _ = part => {}
                    }
                };
                let _ = tokio::time::timeout(start.nap(&seen), woken).await;
            }
            mark_started(&started, next.0);
            let sent = reply.send(Next::Start(next, params)).is_ok();
            tracing::debug!(height = next.0, sent, "starting the next height");
        });
    }

    fn raw_decided(&self, block: surplus_ledger::Block) -> RawDecidedValue<Ctx> {
        let height = Height(block.header.height);
        let id = ValueId(block.header.hash());
        let round = Round::new(block.certificate.round);
        // The certificate names validators of the set in force at its height.
        let keys =
            self.chain.store.validators_at(height.0).map(|s| s.validators).unwrap_or_default();
        let commit_signatures = block
            .certificate
            .signatures
            .iter()
            .filter_map(|s| {
                keys.get(usize::from(s.validator)).map(|key| ExtendedCommitSignature {
                    address: Address(*key),
                    signature: Signature::from_bytes(s.signature.0),
                    extension: None,
                })
            })
            .collect();
        let cert = ExtendedCommitCertificate { height, round, value_id: id, commit_signatures };
        let mut body = block;
        body.certificate = Default::default();
        RawDecidedValue::new(Bytes::from(body.encode()), cert)
    }

    fn synced(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        bytes: &[u8],
    ) -> Result<SyncedValueOutcome<Ctx>> {
        if height.0 != self.chain.height() + 1 {
            return Ok(SyncedValueOutcome::LocalTransientError);
        }
        let (id, valid) = match tokio::task::block_in_place(|| self.chain.check(bytes, None)) {
            Ok(c) => (ValueId(c.block.header.hash()), true),
            Err(super::chain::Invalid::Decode(e)) => {
                tracing::warn!(height = height.0, error = %e, "undecodable synced block");
                return Ok(SyncedValueOutcome::PeerFault);
            }
            Err(e) => {
                tracing::warn!(height = height.0, error = %e, "synced block does not re-execute");
                return Ok(SyncedValueOutcome::PeerFault);
            }
        };
        self.chain.store_undecided(height.0, round.as_i64(), id, proposer, valid, bytes)?;
        self.synced_heights.insert(height.0);
        Ok(SyncedValueOutcome::Verdict(proposed(height, round, proposer, id, valid)))
    }
}

/// The consensus peer id of each validator of `set`, derived from its key.
fn peers_of(set: &ValidatorSet) -> std::collections::HashMap<PeerId, Address> {
    set.validators
        .iter()
        .filter_map(|v| {
            let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&v.address.0 .0).ok()?;
            let id = libp2p::identity::PublicKey::from(key).to_peer_id();
            Some((PeerId::from_bytes(&id.to_bytes()).ok()?, v.address))
        })
        .collect()
}

/// Records that this node starts `height` now (keeping the last few heights).
/// The entries of a block that came from the pool (signed by their authors): the pace bounds
/// these, so it counts the time of the entries they bring (fills, settlements) against them.
fn user_entries(block: &surplus_ledger::Block) -> usize {
    block.entries.iter().filter(|e| matches!(e.auth, Auth::Signed { .. })).count()
}

fn mark_started(started: &std::sync::Mutex<BTreeMap<u64, Instant>>, height: u64) {
    let mut started = started.lock().unwrap_or_else(|e| e.into_inner());
    started.insert(height, Instant::now());
    while started.len() > 4 {
        started.pop_first();
    }
}
