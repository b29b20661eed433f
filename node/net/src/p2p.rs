//! The node's application gossip: orders, cancels and transactions, and checkpoints, over our
//! own libp2p swarm (the consensus engine runs its own).
//!
//! TCP and QUIC, noise, yamux; identify, ping, Kademlia (bootstrap peers are also dialled
//! directly and redialled when lost), optional mDNS, connection limits, and gossipsub in
//! explicit validation mode: nothing is relayed before the node's [`Validator`] accepts it.
//! Before the validator sees a message the network task drops, and reports as invalid, messages
//! larger than [`NetConfig::max_message_bytes`] and messages beyond the forwarding peer's token
//! bucket ([`NetConfig::peer_msgs_per_sec`], [`NetConfig::peer_burst`]). Rejections lower the
//! sender's gossipsub score (P₄, invalid message deliveries); a peer that keeps sending invalid
//! messages falls below the graylist threshold and is ignored until its score decays.
//!
//! Message ids are blake3 of the data, so the same entry published by two nodes is one message.
//!
//! One task owns the [`Swarm`]; [`Gossip`] talks to it through a bounded command channel.
//! Validation runs on one worker thread fed by a bounded queue, so a slow validator never stalls
//! the swarm: when the queue is full the message is ignored (dropped without penalty).
//!
//! A node started with a [`SnapshotSource`] ([`start_with`]) also answers snapshot requests
//! (`/surplus/snapshot/1`, [`crate::snapfetch`]): the source runs on tokio's blocking pool, at
//! most [`snapfetch::SERVE_PER_PEER`] requests per peer and [`snapfetch::SERVE_TOTAL`] in all
//! (beyond: `Busy`). A peer that asked for a snapshot within [`snapfetch::CLIENT_GRACE`], or
//! has a request in progress, is a snapshot client: it is exempt from the subscription grace
//! (a node catching up subscribes to no topic before it starts).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, ListenError, NetworkBehaviour,
    SwarmEvent, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{
    connection_limits, identify, identity, kad, mdns, noise, ping, request_response, tcp, yamux,
    Multiaddr, PeerId, StreamProtocol, Swarm,
};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::snapfetch::{self, ServeBook, SnapRequest, SnapResponse, SnapshotSource};

/// Room around a message's data in one gossipsub frame: topic, source, sequence number and
/// signature of the message, and control messages batched with it.
const FRAME_SLACK: usize = 4 * 1024;
/// Commands waiting for the network task.
const COMMAND_QUEUE: usize = 256;
/// Most addresses of one peer kept in the routing table (from its latest announcement).
const MAX_PEER_ADDRS: usize = 8;
/// Messages waiting for the validator; beyond this they are ignored.
const VALIDATION_QUEUE: usize = 4096;
/// How often lost bootstrap peers are dialled again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(5);
/// Ping interval and timeout. A failed ping closes the connection: across a partition both
/// sides then drop it, and the connection made after healing is each side's first to the
/// other, over which gossipsub exchanges subscriptions.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`NetConfig::subscription_grace`]: how long a connected peer may stay without
/// a known subscription to either of the chain's topics before it is disconnected. Gossipsub
/// sends its subscriptions only over a peer's first connection; if the other side still held an
/// old connection when this one was made (a healed partition), they never come, and without
/// them nothing is gossiped to the peer. A subscription to the checkpoints topic alone counts
/// (decision 0013: read-only watchers).
pub const SUBSCRIPTION_GRACE: Duration = Duration::from_secs(10);
/// How often the connected peers' scores are copied out for [`Gossip::peer_list`].
const SCORE_INTERVAL: Duration = Duration::from_secs(1);
/// How long [`start`] waits for the listeners to bind.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected peer ([`Gossip::peer_list`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// Its peer id.
    pub id: PeerId,
    /// The address of its first connection.
    pub address: Multiaddr,
    /// Its gossipsub score.
    pub score: Option<f64>,
    /// The name it announced (self-declared).
    pub name: Option<String>,
}

/// Network settings of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Addresses to listen on: `/ip4/A/tcp/N` and `/ip4/A/udp/N/quic-v1` (port 0: any).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, each ending in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Most established connections, inbound and outbound together.
    pub max_connections: u32,
    /// Largest message data accepted or published, bytes.
    pub max_message_bytes: usize,
    /// Messages per second a peer may forward to us; the excess is rejected. Every message of
    /// the network may reach us through one peer, so this bounds the network's rate too.
    pub peer_msgs_per_sec: u32,
    /// Messages a peer may send at once above its rate.
    pub peer_burst: u32,
    /// How long a connected peer may stay without a known subscription to the orders or the
    /// checkpoints topic before it is disconnected ([`SUBSCRIPTION_GRACE`] by default). Snapshot
    /// clients are exempt while they keep asking (see the module docs).
    pub subscription_grace: Duration,
    /// This node's name, announced to its peers (identify's agent version, `surplus/VERSION
    /// (NAME)`) so that operators see names rather than peer ids. Self-declared: not trusted.
    pub name: String,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4701".parse().unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/4701/quic-v1".parse().unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            max_connections: 64,
            max_message_bytes: 64 * 1024,
            peer_msgs_per_sec: 2_000,
            peer_burst: 4_000,
            subscription_grace: SUBSCRIPTION_GRACE,
            name: String::new(),
        }
    }
}

impl NetConfig {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |what: &str| Err(NetError::Config(what.to_owned()));
        if self.listen.is_empty() {
            return bad("listen: give at least one address, e.g. /ip4/0.0.0.0/tcp/4701");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_message_bytes == 0 {
            return bad("max_message_bytes must be at least 1");
        }
        if self.peer_msgs_per_sec == 0 || self.peer_burst == 0 {
            return bad("peer_msgs_per_sec and peer_burst must be at least 1");
        }
        if self.subscription_grace.is_zero() {
            return bad("subscription_grace must be more than zero");
        }
        for addr in &self.bootstrap {
            bootstrap_peer(addr)?;
        }
        Ok(())
    }
}

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `surplus/<chain id>/orders/v3`: orders, cancels and transactions, one or several entries
    /// a message (framed by the node, opaque to this module).
    Orders,
    /// `surplus/<chain id>/checkpoints/v2`: signed checkpoints (opaque to this module).
    Checkpoints,
}

impl Topic {
    /// The gossipsub topic name on chain `chain_id`.
    pub fn name(self, chain_id: &str) -> String {
        match self {
            Topic::Orders => format!("surplus/{chain_id}/orders/v3"),
            Topic::Checkpoints => format!("surplus/{chain_id}/checkpoints/v2"),
        }
    }
}

/// What the node decided about a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: relay it.
    Accept,
    /// A duplicate or stale message: drop it without penalising the sender.
    Ignore,
    /// Invalid: drop it and penalise the peer that sent it.
    Reject(String),
}

/// Decides about each received message before it is relayed. The node's implementation admits
/// an accepted entry into its mempool before returning [`Verdict::Accept`].
pub trait Validator: Send + Sync + 'static {
    /// The verdict on `data`, received on `topic` from peer `from` (the peer that forwarded it).
    fn validate(&self, topic: Topic, data: &[u8], from: &PeerId) -> Verdict;
}

/// Counters of received messages, by what happened to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Accepted by the validator (and relayed).
    pub accepted: u64,
    /// Rejected by the validator (sender penalised).
    pub rejected: u64,
    /// Ignored: by the validator, or because the validation queue was full.
    pub ignored: u64,
    /// Beyond the sending peer's rate (rejected, sender penalised).
    pub rate_limited: u64,
    /// Larger than `max_message_bytes` (rejected, sender penalised).
    pub oversized: u64,
    /// Received messages gossipsub dropped before they reached the node (not in the counters
    /// above).
    pub dropped: Dropped,
    /// Messages gossipsub could not send to a peer.
    pub send_dropped: SendDropped,
    /// Connections closed or refused by the node's own rules.
    pub disconnects: Disconnects,
    /// Snapshot requests served (all zero without a [`SnapshotSource`]).
    pub snapshot: SnapshotServed,
}

/// Snapshot requests answered by this node, by answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotServed {
    /// Answered with data (a manifest or a chunk).
    pub data: u64,
    /// Answered `NotFound`.
    pub not_found: u64,
    /// Answered `Busy`: beyond the per-peer or the total limit.
    pub busy: u64,
    /// Failed: timed out, connection closed, the source's answer too large, or a malformed
    /// request.
    pub failed: u64,
}

/// Received gossip that gossipsub dropped before the node's validator saw it, by reason.
/// Gossipsub checks, in this order: graylist, no-sign checks, self origin, duplicates, topic; a
/// message is counted under the first check it fails. Refreshed once a second
/// ([`SCORE_INTERVAL`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Messages on the orders or checkpoints topic failing the no-sign checks: carrying a
    /// `signature`, a `seqno` or a `from` (the forwarding peer is charged an invalid delivery).
    /// Failures on other topics are not counted.
    pub invalid: u64,
    /// Messages whose `from` is this node's own peer id, forwarded by another peer (charged).
    /// A message with any `from` fails the no-sign checks first (counted `invalid`), so since
    /// decision 0035 this stays 0; kept so that `/metrics` keeps its series.
    pub self_origin: u64,
    /// Messages on the orders or checkpoints topic whose id (BLAKE3 of the data) was seen in
    /// the duplicate window.
    pub duplicate: u64,
    /// Messages passing the no-sign checks on any topic other than the node's two, whether or
    /// not their id was seen before.
    pub unsubscribed_topic: u64,
    /// Gossipsub RPC frames (each may carry several messages) from a peer whose score was below
    /// the graylist threshold, dropped unread except for their subscriptions.
    pub graylisted: u64,
}

/// Messages (publications and forwards) gossipsub could not send to a peer, by reason, as its
/// `SlowPeer` events report them (at each heartbeat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendDropped {
    /// The peer's send queue was full.
    pub queue_full: u64,
    /// The message waited in the queue past its timeout.
    pub timeout: u64,
}

/// Connections the node closed or refused by its own rules, by rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Disconnects {
    /// Connections closed because an outbound ping failed, timed out or was not supported.
    pub ping_failed: u64,
    /// Peers disconnected (all their connections) for lacking a known subscription to both
    /// topics for the grace period.
    pub no_subscription: u64,
    /// Connections, incoming or outgoing, refused by the connection limits.
    pub connection_limit: u64,
}

/// How many items wait in the network's bounded queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetQueues {
    /// Publications and questions for the network task (at most 256).
    pub commands: usize,
    /// Received gossip waiting for validation (at most 4,096; past it, messages are ignored).
    pub validation: usize,
}

/// Why the network could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A setting is wrong.
    #[error("network configuration: {0}")]
    Config(String),
    /// The transport or a behaviour could not be built.
    #[error("could not build the network: {0}")]
    Build(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason} (is the port in use, or the address not local?)")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// A message larger than allowed.
    #[error("the message is {bytes} bytes, more than max_message_bytes {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Every peer's send queue is full: try again shortly.
    #[error("the network is congested: every peer's send queue is full, try again shortly")]
    Congested,
    /// Publishing failed otherwise.
    #[error("publish failed: {0}")]
    Publish(String),
    /// The network task has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// What became of a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Sent to at least one peer.
    Sent,
    /// No connected peer is subscribed to the topic (yet): nothing was sent, and the message
    /// is not remembered as seen, so publishing it again later sends it.
    NoPeers,
    /// This network has already seen (or sent) the message in its duplicate window.
    AlreadySeen,
}

/// A handle to the running network. Cloning it gives another handle to the same network.
#[derive(Clone)]
pub struct Gossip {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    local_peer_id: PeerId,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

#[derive(Default)]
struct Shared {
    peers: AtomicUsize,
    /// Connected peers and the remote address of their first connection (bounded by the
    /// connection limit).
    peer_addrs: Mutex<std::collections::BTreeMap<PeerId, Multiaddr>>,
    /// The names the connected peers announced (identify).
    peer_names: Mutex<HashMap<PeerId, String>>,
    listen_addrs: Mutex<Vec<Multiaddr>>,
    /// Gossipsub scores of the connected peers, refreshed every [`SCORE_INTERVAL`].
    scores: Mutex<HashMap<PeerId, f64>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
    ignored: AtomicU64,
    rate_limited: AtomicU64,
    oversized: AtomicU64,
    /// Counts of the gossipsub transform and of [`Gossipsub`], raw (see [`Task::copy_drops`]).
    raw: Arc<RawDrops>,
    /// Derived from `raw` and gossipsub's own metrics once a second.
    dropped: Mutex<Dropped>,
    send_queue_full: AtomicU64,
    send_timeout: AtomicU64,
    ping_failed: AtomicU64,
    no_subscription: AtomicU64,
    connection_limit: AtomicU64,
    /// Messages waiting for the validation thread (a gauge, at most [`VALIDATION_QUEUE`]).
    validating: AtomicUsize,
    snap_data: AtomicU64,
    snap_not_found: AtomicU64,
    snap_busy: AtomicU64,
    snap_failed: AtomicU64,
}

enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Published, NetError>>,
    },
    #[cfg_attr(not(test), allow(dead_code))] // asked by tests; operators read the logs
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Shutdown,
}

impl Gossip {
    /// Publishes `data` on `topic`. Having no peer yet is not an error (the message is simply
    /// not sent; the node's own mempool still holds it), nor is publishing data the network
    /// has already seen.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<Published, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Publish { topic, data, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// The gossipsub score this node gives `peer` (negative after invalid messages; below
    /// −80 the peer is ignored), or `None` if the peer is unknown or the network stopped.
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::PeerScore { peer, reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Number of connected peers.
    pub fn peers(&self) -> usize {
        self.shared.peers.load(Ordering::Relaxed)
    }

    /// Connected peers, each with the address of its first connection, its gossipsub score
    /// (as of at most a second ago; `None` before the first reading) and the name it announced.
    pub fn peer_list(&self) -> Vec<PeerInfo> {
        let scores = self.shared.scores.lock().map(|s| s.clone()).unwrap_or_default();
        let names = self.shared.peer_names.lock().map(|n| n.clone()).unwrap_or_default();
        self.shared
            .peer_addrs
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(id, a)| PeerInfo {
                        id: *id,
                        address: a.clone(),
                        score: scores.get(id).copied(),
                        name: names.get(id).cloned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses actually bound (a port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Message counters since start.
    pub fn stats(&self) -> NetStats {
        let s = &self.shared;
        NetStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            ignored: s.ignored.load(Ordering::Relaxed),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            oversized: s.oversized.load(Ordering::Relaxed),
            dropped: s.dropped.lock().map(|d| *d).unwrap_or_default(),
            send_dropped: SendDropped {
                queue_full: s.send_queue_full.load(Ordering::Relaxed),
                timeout: s.send_timeout.load(Ordering::Relaxed),
            },
            disconnects: Disconnects {
                ping_failed: s.ping_failed.load(Ordering::Relaxed),
                no_subscription: s.no_subscription.load(Ordering::Relaxed),
                connection_limit: s.connection_limit.load(Ordering::Relaxed),
            },
            snapshot: SnapshotServed {
                data: s.snap_data.load(Ordering::Relaxed),
                not_found: s.snap_not_found.load(Ordering::Relaxed),
                busy: s.snap_busy.load(Ordering::Relaxed),
                failed: s.snap_failed.load(Ordering::Relaxed),
            },
        }
    }

    /// How full the network's bounded queues are now.
    pub fn queues(&self) -> NetQueues {
        NetQueues {
            commands: COMMAND_QUEUE.saturating_sub(self.commands.capacity()),
            validation: self.shared.validating.load(Ordering::Relaxed),
        }
    }

    /// Stops the network and waits for its task to end (other handles then get
    /// [`NetError::Stopped`]).
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    mdns: Toggle<mdns::tokio::Behaviour>,
    gossipsub: Gossipsub,
    /// `/surplus/snapshot/1`, inbound only; absent without a [`SnapshotSource`].
    snapshot: Toggle<request_response::Behaviour<snapfetch::Codec>>,
}

/// Gossipsub with the node's counting transform.
type GossipsubBehaviour = gossipsub::Behaviour<CountingTransform>;

/// Raw counts of messages gossipsub drops, from the two places the node can see them: the data
/// transform and [`Gossipsub`]. [`Task::copy_drops`] combines them with gossipsub's own metrics.
#[derive(Default)]
struct RawDrops {
    /// Messages claiming this node as their source, on the node's topics and on others.
    self_origin_ours: AtomicU64,
    self_origin_other: AtomicU64,
    /// Other messages on topics the node does not subscribe to.
    unsubscribed_topic: AtomicU64,
    /// RPC frames from graylisted peers.
    graylisted: AtomicU64,
}

/// The identity transform, counting as it goes. Gossipsub calls it for every received message
/// that passed the no-sign checks, from a peer that is not graylisted, before it checks the
/// message's source, the duplicate cache and the topic; so it sees exactly the messages those
/// later checks drop for claiming this node as their source or for their topic.
struct CountingTransform {
    local: PeerId,
    topics: [TopicHash; 2],
    counts: Arc<RawDrops>,
}

impl gossipsub::DataTransform for CountingTransform {
    fn inbound_transform(
        &self,
        raw: gossipsub::RawMessage,
    ) -> Result<gossipsub::Message, std::io::Error> {
        let ours = self.topics.contains(&raw.topic);
        let counter = if raw.source == Some(self.local) {
            Some(if ours { &self.counts.self_origin_ours } else { &self.counts.self_origin_other })
        } else if !ours {
            Some(&self.counts.unsubscribed_topic)
        } else {
            None
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Ok(gossipsub::Message {
            source: raw.source,
            data: raw.data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(&self, _: &TopicHash, data: Vec<u8>) -> Result<Vec<u8>, std::io::Error> {
        Ok(data)
    }
}

/// Gossipsub, counting the RPC frames it drops unread because their peer is graylisted, which
/// gossipsub neither reports nor counts in its metrics. Everything else passes through.
struct Gossipsub {
    inner: GossipsubBehaviour,
    graylist_threshold: f64,
    counts: Arc<RawDrops>,
}

impl std::ops::Deref for Gossipsub {
    type Target = GossipsubBehaviour;
    fn deref(&self) -> &GossipsubBehaviour {
        &self.inner
    }
}

impl std::ops::DerefMut for Gossipsub {
    fn deref_mut(&mut self) -> &mut GossipsubBehaviour {
        &mut self.inner
    }
}

/// Whether a gossipsub handler event is a received RPC (`HandlerEvent::Message`). The type is
/// private to libp2p-gossipsub, so its variant is read from the start of its `Debug` text; the
/// writer stops formatting after a few bytes, so the RPC itself is never formatted.
fn is_received_rpc(event: &impl std::fmt::Debug) -> bool {
    use std::fmt::Write;
    const HEAD: &str = "Message {";
    struct Head(String);
    impl Write for Head {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.0.len() >= HEAD.len() {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }
    let mut head = Head(String::with_capacity(HEAD.len()));
    let _ = write!(head, "{event:?}");
    head.0 == HEAD
}

impl NetworkBehaviour for Gossipsub {
    type ConnectionHandler = <GossipsubBehaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = gossipsub::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        // The same test gossipsub makes before it drops the RPC (`score < graylist threshold`).
        if self.inner.peer_score(&peer).is_some_and(|s| s < self.graylist_threshold)
            && is_received_rpc(&event)
        {
            self.counts.graylisted.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_connection_handler_event(peer, connection, event);
    }

    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ToSwarm<gossipsub::Event, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// Gossipsub's metrics registry, read back as text: the value of counter family `name` for
/// topic `topic` (0 when absent).
fn topic_counter(text: &str, name: &str, topic: &TopicHash) -> u64 {
    let head = format!("{name}_total{{hash=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&head))
        .filter_map(|rest| rest.rsplit_once(' '))
        .find(|(label, _)| label.strip_suffix("\"}") == Some(topic.as_str()))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The peer id at the end of a bootstrap address.
fn bootstrap_peer(addr: &Multiaddr) -> Result<PeerId, NetError> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => Err(NetError::Config(format!(
            "bootstrap address {addr} must end in /p2p/<peer id>, e.g. \
             /ip4/10.0.0.1/tcp/4701/p2p/12D3KooW..."
        ))),
    }
}

fn score_params(topics: &[TopicHash]) -> gossipsub::PeerScoreParams {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        // A little credit for time in the mesh and first deliveries, capped well below what a
        // few invalid messages cost.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 1000.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 100.0,
        // Order flow is bursty and often idle: no penalty for mesh peers that deliver little.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P₄: counter² × weight. One invalid message costs 10 (the gossip threshold), three
        // put the peer below the graylist threshold (−80); the counter decays ×0.9 a second.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams::default();
    for t in topics {
        params.topics.insert(t.clone(), topic.clone());
    }
    params
}

/// The agent version a node announces: `surplus/VERSION`, then ` (NAME)` when it has a name.
fn agent_version(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control() && *c != ')').take(64).collect();
    match name.is_empty() {
        true => format!("surplus/{}", env!("CARGO_PKG_VERSION")),
        false => format!("surplus/{} ({name})", env!("CARGO_PKG_VERSION")),
    }
}

/// The name a peer announced in its agent version (see [`agent_version`]), if any.
fn announced_name(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("surplus/")?;
    let name = rest.split_once(" (")?.1.strip_suffix(')')?;
    let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    (!name.is_empty()).then_some(name)
}

/// The ed25519 key a peer id was made from (every Surplus node's peer id is its node key's).
pub fn peer_key(peer: &PeerId) -> Option<[u8; 32]> {
    let digest = peer.as_ref();
    if digest.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(digest.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

fn build_behaviour(
    key: &identity::Keypair,
    cfg: &NetConfig,
    chain_id: &str,
    topics: &[TopicHash; 2],
    counts: &Arc<RawDrops>,
    registry: &mut Registry,
    serve_snapshots: bool,
) -> Result<Behaviour, NetError> {
    let peer_id = key.public().to_peer_id();
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(cfg.max_connections))
        .with_max_pending_incoming(Some(cfg.max_connections))
        .with_max_pending_outgoing(Some(cfg.max_connections))
        // Two: a simultaneous dial by both sides must not be refused.
        .with_max_established_per_peer(Some(2));
    let identify = identify::Behaviour::new(
        identify::Config::new(format!("/surplus/{chain_id}/1.0.0"), key.public())
            .with_agent_version(agent_version(&cfg.name)),
    );
    let kad_protocol = StreamProtocol::try_from_owned(format!("/surplus/{chain_id}/kad/1.0.0"))
        .map_err(|e| NetError::Config(format!("chain id {chain_id:?}: {e}")))?;
    let mut kad_config = kad::Config::new(kad_protocol);
    kad_config.set_query_timeout(Duration::from_secs(30));
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    // Consortium nodes are servers; without this, Kademlia waits for a confirmed external
    // address, which a node on a private network may never get.
    kad.set_mode(Some(kad::Mode::Server));
    let mdns = if cfg.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .map_err(|e| NetError::Build(format!("mDNS: {e}")))?,
        )
    } else {
        None
    };
    // Messages carry no author, sequence number or signature (decision 0035): what a topic
    // carries signs itself (entries by their authors, checkpoints by their validators), the
    // forwarding peer is known from its noise-authenticated connection, and ids hash the data.
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Without authors, gossipsub would take a copy of the node's own publication relayed
        // back to it as a forgery and charge the relaying peer; with this on, the copy is what
        // it is, a duplicate (the publication's id is in the duplicate cache).
        .allow_self_origin(true)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(cfg.max_message_bytes.saturating_add(FRAME_SLACK))
        .heartbeat_interval(Duration::from_millis(500))
        // Shorter than the node's wait before it gossips a pending entry again.
        .duplicate_cache_time(Duration::from_secs(30))
        .build()
        .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
    let transform =
        CountingTransform { local: peer_id, topics: topics.clone(), counts: counts.clone() };
    let mut gossipsub = GossipsubBehaviour::new_with_transform(
        gossipsub::MessageAuthenticity::Anonymous,
        gossip_config,
        transform,
    )
    .map_err(|e| NetError::Build(format!("gossipsub: {e}")))?
    // Its metrics count invalid messages and duplicates per topic (`Task::copy_drops`). They
    // are bounded: the node's topics and at most 50 others.
    .with_metrics(registry, gossipsub::MetricsConfig::default());
    let thresholds = gossipsub::PeerScoreThresholds::default();
    let graylist_threshold = thresholds.graylist_threshold;
    gossipsub
        .with_peer_score(score_params(topics), thresholds)
        .map_err(|e| NetError::Build(format!("gossipsub scoring: {e}")))?;
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        identify,
        ping: ping::Behaviour::new(
            ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT),
        ),
        kad,
        mdns: Toggle::from(mdns),
        gossipsub: Gossipsub { inner: gossipsub, graylist_threshold, counts: counts.clone() },
        snapshot: Toggle::from(serve_snapshots.then(snapfetch::server_behaviour)),
    })
}

/// Starts the network: binds every listen address (returning once each is bound), dials the
/// bootstrap peers and subscribes to both topics of `chain_id`. Received messages go to
/// `validator`; only those it accepts are relayed. Serves no snapshots ([`start_with`] does).
pub async fn start(
    cfg: NetConfig,
    keypair: identity::Keypair,
    chain_id: &str,
    validator: Arc<dyn Validator>,
) -> Result<Gossip, NetError> {
    start_with(cfg, keypair, chain_id, validator, None).await
}

/// [`start`], and with `snapshots` the node also answers snapshot requests from it
/// (`/surplus/snapshot/1`; see the module docs for the limits).
pub async fn start_with(
    cfg: NetConfig,
    keypair: identity::Keypair,
    chain_id: &str,
    validator: Arc<dyn Validator>,
    snapshots: Option<Arc<dyn SnapshotSource>>,
) -> Result<Gossip, NetError> {
    cfg.validate()?;
    let orders = IdentTopic::new(Topic::Orders.name(chain_id));
    let checkpoints = IdentTopic::new(Topic::Checkpoints.name(chain_id));
    let topic_hashes = [orders.hash(), checkpoints.hash()];
    let local_peer_id = keypair.public().to_peer_id();

    let shared = Arc::new(Shared::default());
    let mut registry = Registry::default();
    let behaviour = build_behaviour(
        &keypair,
        &cfg,
        chain_id,
        &topic_hashes,
        &shared.raw,
        &mut registry,
        snapshots.is_some(),
    )?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Build(format!("TCP transport: {e}")))?
        .with_quic()
        .with_behaviour(move |_| behaviour)
        .map_err(|e| NetError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();

    for topic in [&orders, &checkpoints] {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| NetError::Build(format!("subscribe to {topic}: {e}")))?;
    }

    let mut pending = HashMap::new();
    for addr in &cfg.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        pending.insert(id, addr.clone());
    }
    // Drive the swarm until every listener has reported an address, so that callers (and
    // tests using port 0) can hand out real addresses at once.
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some()).await;
        let Ok(event) = event else {
            let addr = pending.into_values().next().unwrap_or_else(Multiaddr::empty);
            return Err(NetError::Listen { addr, reason: "timed out waiting to bind".into() });
        };
        match event {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                pending.remove(&listener_id);
                if let Ok(mut a) = shared.listen_addrs.lock() {
                    a.push(address);
                }
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                if let Some(addr) = pending.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    return Err(NetError::Listen { addr, reason });
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                if let Some(addr) = pending.remove(&listener_id) {
                    return Err(NetError::Listen { addr, reason: error.to_string() });
                }
            }
            _ => {}
        }
    }

    let mut bootstrap = Vec::new();
    for addr in &cfg.bootstrap {
        let peer = bootstrap_peer(addr)?;
        if peer == local_peer_id {
            continue;
        }
        let transport_addr: Multiaddr =
            addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
        swarm.behaviour_mut().kad.add_address(&peer, transport_addr.clone());
        bootstrap.push((peer, transport_addr));
    }

    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (jobs, job_rx) = mpsc::channel::<Job>(VALIDATION_QUEUE);
    // Bounded too: the validation worker waits for the network task, which drains this channel
    // in every turn of its loop and never waits for the worker.
    let (verdict_tx, verdicts) = mpsc::channel::<Done>(VALIDATION_QUEUE);
    spawn_validation_worker(validator, job_rx, verdict_tx)?;
    // Bounded by the requests in progress (at most `SERVE_TOTAL`), each sending one answer.
    let (served_tx, served) = mpsc::channel::<Served>(snapfetch::SERVE_TOTAL);

    let task = Task {
        swarm,
        topics: Topics {
            orders: orders.hash(),
            checkpoints: checkpoints.hash(),
            orders_topic: orders,
            checkpoints_topic: checkpoints,
        },
        shared: shared.clone(),
        limiter: RateLimiter::new(cfg.peer_msgs_per_sec, cfg.peer_burst),
        max_message_bytes: cfg.max_message_bytes,
        bootstrap,
        bootstrapped: false,
        jobs,
        unsubscribed: SubscriptionWatch::new(cfg.subscription_grace),
        registry,
        snapshots,
        serving: ServeBook::default(),
        served_tx,
    };
    let handle = tokio::spawn(task.run(command_rx, verdicts, served));
    Ok(Gossip { commands, shared, local_peer_id, task: Arc::new(Mutex::new(Some(handle))) })
}

/// A message waiting for the validator.
struct Job {
    topic: Topic,
    data: Vec<u8>,
    from: PeerId,
    id: MessageId,
}

/// The source's answer to a snapshot request, back from the blocking pool (`None`: not sent).
struct Served {
    channel: request_response::ResponseChannel<SnapResponse>,
    response: Option<SnapResponse>,
}

/// The validator's verdict on a [`Job`].
struct Done {
    id: MessageId,
    from: PeerId,
    verdict: Verdict,
}

fn spawn_validation_worker(
    validator: Arc<dyn Validator>,
    mut jobs: mpsc::Receiver<Job>,
    verdicts: mpsc::Sender<Done>,
) -> Result<(), NetError> {
    // One thread keeps verdicts in arrival order (an order is validated before its cancel).
    std::thread::Builder::new()
        .name("gossip-validate".into())
        .spawn(move || {
            while let Some(job) = jobs.blocking_recv() {
                let verdict = validator.validate(job.topic, &job.data, &job.from);
                if verdicts.blocking_send(Done { id: job.id, from: job.from, verdict }).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| NetError::Build(format!("validation thread: {e}")))
}

struct Topics {
    orders: TopicHash,
    checkpoints: TopicHash,
    orders_topic: IdentTopic,
    checkpoints_topic: IdentTopic,
}

struct Task {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    shared: Arc<Shared>,
    limiter: RateLimiter,
    max_message_bytes: usize,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    bootstrapped: bool,
    jobs: mpsc::Sender<Job>,
    unsubscribed: SubscriptionWatch,
    /// Gossipsub's own metrics (read by [`Task::copy_drops`], not served as they are).
    registry: Registry,
    snapshots: Option<Arc<dyn SnapshotSource>>,
    /// Snapshot requests in progress, and which peers are snapshot clients.
    serving: ServeBook,
    served_tx: mpsc::Sender<Served>,
}

/// Connected peers without a known subscription, and since when.
struct SubscriptionWatch {
    grace: Duration,
    since: HashMap<PeerId, Instant>,
}

impl SubscriptionWatch {
    fn new(grace: Duration) -> Self {
        Self { grace, since: HashMap::new() }
    }

    /// Given the connected peers now lacking a subscription, those that have lacked one for
    /// the whole grace period (each returned once; its clock starts again).
    fn stale(&mut self, now: Instant, lacking: impl Iterator<Item = PeerId>) -> Vec<PeerId> {
        let lacking: std::collections::HashSet<PeerId> = lacking.collect();
        self.since.retain(|p, _| lacking.contains(p));
        let mut out = Vec::new();
        for p in lacking {
            let since = *self.since.entry(p).or_insert(now);
            if now.duration_since(since) >= self.grace {
                out.push(p);
                self.since.remove(&p);
            }
        }
        out
    }
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut verdicts: mpsc::Receiver<Done>,
        mut served: mpsc::Receiver<Served>,
    ) {
        self.dial_bootstrap();
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.tick().await;
        let mut scores = tokio::time::interval(SCORE_INTERVAL);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Publish { topic, data, reply }) => {
                        let _ = reply.send(self.publish(topic, data));
                    }
                    Some(Command::PeerScore { peer, reply }) => {
                        let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
                    }
                    Some(Command::Shutdown) | None => break,
                },
                Some(done) = verdicts.recv() => self.report(done),
                Some(s) = served.recv() => self.send_snapshot(s),
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = redial.tick() => self.dial_bootstrap(),
                _ = scores.tick() => self.copy_scores(),
            }
        }
        tracing::debug!("gossip network stopped");
    }

    /// Derives the counts of [`Dropped`] from gossipsub's metrics and the raw counts. Read
    /// here, between two turns of the swarm, both sides are up to date with the same messages,
    /// so each difference counts what it says and never decreases.
    fn copy_drops(&mut self) {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return;
        }
        let per_topic = |name: &str| {
            [&self.topics.orders, &self.topics.checkpoints]
                .into_iter()
                .map(|t| topic_counter(&text, name, t))
                .sum::<u64>()
        };
        let raw = &self.shared.raw;
        let self_origin_ours = raw.self_origin_ours.load(Ordering::Relaxed);
        // On the node's topics, gossipsub counts as invalid the no-sign-check failures and the
        // self-origin messages; as received "unfiltered" every message past those checks,
        // and "filtered" those past the self-origin and duplicate checks too.
        let invalid = per_topic("invalid_messages_per_topic").saturating_sub(self_origin_ours);
        let duplicate = per_topic("topic_msg_recv_counts_unfiltered")
            .saturating_sub(per_topic("topic_msg_recv_counts"))
            .saturating_sub(self_origin_ours);
        let now = Dropped {
            invalid,
            self_origin: self_origin_ours + raw.self_origin_other.load(Ordering::Relaxed),
            duplicate,
            unsubscribed_topic: raw.unsubscribed_topic.load(Ordering::Relaxed),
            graylisted: raw.graylisted.load(Ordering::Relaxed),
        };
        if let Ok(mut d) = self.shared.dropped.lock() {
            // Counters: never let a reading go back.
            *d = Dropped {
                invalid: d.invalid.max(now.invalid),
                self_origin: d.self_origin.max(now.self_origin),
                duplicate: d.duplicate.max(now.duplicate),
                unsubscribed_topic: d.unsubscribed_topic.max(now.unsubscribed_topic),
                graylisted: d.graylisted.max(now.graylisted),
            };
        }
    }

    /// Copies the peers' scores and the drop counts out, and disconnects peers whose
    /// subscriptions to both topics stayed unknown for the grace period.
    fn copy_scores(&mut self) {
        self.copy_drops();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let now: HashMap<PeerId, f64> = self
            .swarm
            .connected_peers()
            .filter_map(|p| Some((*p, gossipsub.peer_score(p)?)))
            .collect();
        if let Ok(mut s) = self.shared.scores.lock() {
            *s = now;
        }
        // Either topic will do: a node sends both subscriptions together, and a read-only
        // watcher may follow the checkpoints alone (decision 0013).
        let subscribed: std::collections::HashSet<PeerId> = gossipsub
            .all_peers()
            .filter(|(_, topics)| {
                topics.contains(&&self.topics.orders) || topics.contains(&&self.topics.checkpoints)
            })
            .map(|(p, _)| *p)
            .collect();
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let now = Instant::now();
        // Snapshot clients are nodes catching up before they start: they subscribe to nothing.
        let serving = &self.serving;
        let lacking =
            connected.into_iter().filter(|p| !subscribed.contains(p) && !serving.is_client(p, now));
        for peer in self.unsubscribed.stale(now, lacking) {
            tracing::info!(%peer, "no subscription known from a connected peer: reconnecting");
            if self.swarm.disconnect_peer_id(peer).is_ok() {
                self.shared.no_subscription.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn dial_bootstrap(&mut self) {
        for (peer, addr) in &self.bootstrap {
            if self.swarm.is_connected(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, %addr, "bootstrap dial not started: {e}");
            }
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<Published, NetError> {
        if data.len() > self.max_message_bytes {
            return Err(NetError::TooLarge { bytes: data.len(), max: self.max_message_bytes });
        }
        let t = match topic {
            Topic::Orders => self.topics.orders_topic.clone(),
            Topic::Checkpoints => self.topics.checkpoints_topic.clone(),
        };
        match self.swarm.behaviour_mut().gossipsub.publish(t, data) {
            Ok(_) => Ok(Published::Sent),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(?topic, "published with no peer subscribed yet");
                Ok(Published::NoPeers)
            }
            Err(gossipsub::PublishError::Duplicate) => {
                tracing::debug!(?topic, "the network has already seen this message");
                Ok(Published::AlreadySeen)
            }
            Err(gossipsub::PublishError::MessageTooLarge) => {
                Err(NetError::Publish("the message does not fit one gossipsub frame".into()))
            }
            Err(gossipsub::PublishError::AllQueuesFull(_)) => Err(NetError::Congested),
            Err(e) => Err(NetError::Publish(e.to_string())),
        }
    }

    fn report(&mut self, done: Done) {
        let s = &self.shared;
        let _ =
            s.validating.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let acceptance = match done.verdict {
            Verdict::Accept => {
                s.accepted.fetch_add(1, Ordering::Relaxed);
                MessageAcceptance::Accept
            }
            Verdict::Ignore => {
                s.ignored.fetch_add(1, Ordering::Relaxed);
                MessageAcceptance::Ignore
            }
            Verdict::Reject(why) => {
                tracing::debug!(peer = %done.from, "rejected gossip: {why}");
                s.rejected.fetch_add(1, Ordering::Relaxed);
                MessageAcceptance::Reject
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&done.id, &done.from, acceptance);
    }

    fn on_message(&mut self, from: PeerId, id: MessageId, message: gossipsub::Message) {
        let topic = if message.topic == self.topics.orders {
            Topic::Orders
        } else if message.topic == self.topics.checkpoints {
            Topic::Checkpoints
        } else {
            // Not a topic we subscribe to; gossipsub does not deliver those.
            return;
        };
        let early = if message.data.len() > self.max_message_bytes {
            self.shared.oversized.fetch_add(1, Ordering::Relaxed);
            Some(MessageAcceptance::Reject)
        } else if !self.limiter.allow(from, Instant::now()) {
            self.shared.rate_limited.fetch_add(1, Ordering::Relaxed);
            Some(MessageAcceptance::Reject)
        } else {
            let job = Job { topic, data: message.data, from, id: id.clone() };
            match self.jobs.try_send(job) {
                Ok(()) => {
                    self.shared.validating.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(_) => {
                    tracing::warn!("validation queue full: ignoring a gossip message");
                    self.shared.ignored.fetch_add(1, Ordering::Relaxed);
                    Some(MessageAcceptance::Ignore)
                }
            }
        };
        if let Some(acceptance) = early {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &from, acceptance);
        }
    }

    /// A snapshot request arrived, or one ended.
    fn on_snapshot(&mut self, event: request_response::Event<SnapRequest, SnapResponse>) {
        use request_response::{Event, Message};
        let s = &self.shared;
        match event {
            Event::Message {
                peer,
                message: Message::Request { request_id, request, channel },
                ..
            } => {
                let source = match &self.snapshots {
                    Some(source) if self.serving.admit(peer, request_id, Instant::now()) => {
                        source.clone()
                    }
                    _ => {
                        tracing::debug!(%peer, ?request, "snapshot request refused: busy");
                        s.snap_busy.fetch_add(1, Ordering::Relaxed);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .snapshot
                            .as_mut()
                            .map(|b| b.send_response(channel, SnapResponse::Busy));
                        return;
                    }
                };
                let done = self.served_tx.clone();
                // The source may read files: never on this task.
                tokio::spawn(async move {
                    let answer =
                        tokio::task::spawn_blocking(move || snapfetch::answer(&*source, request))
                            .await;
                    let response = answer.unwrap_or_else(|e| {
                        tracing::error!(?request, "the snapshot source failed: {e}");
                        None
                    });
                    let _ = done.send(Served { channel, response }).await;
                });
            }
            Event::Message { message: Message::Response { .. }, .. } => {}
            Event::ResponseSent { request_id, .. } => self.serving.finished(request_id),
            Event::InboundFailure { peer, request_id, error, .. } => {
                tracing::debug!(%peer, "snapshot request failed: {error}");
                self.serving.finished(request_id);
                s.snap_failed.fetch_add(1, Ordering::Relaxed);
            }
            // Inbound only: this node asks nothing.
            Event::OutboundFailure { .. } => {}
        }
    }

    /// Sends the source's answer to a snapshot request (dropping the channel when there is
    /// none, which fails the request at the other side).
    fn send_snapshot(&mut self, served: Served) {
        let Some(rr) = self.swarm.behaviour_mut().snapshot.as_mut() else {
            return;
        };
        let Some(response) = served.response else {
            return;
        };
        let counter = match response {
            SnapResponse::Data(_) => &self.shared.snap_data,
            SnapResponse::NotFound => &self.shared.snap_not_found,
            SnapResponse::Busy => &self.shared.snap_busy,
        };
        // Fails when the connection closed meanwhile (then reported as an inbound failure).
        if rr.send_response(served.channel, response).is_ok() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_message(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Snapshot(event)) => self.on_snapshot(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) => {
                tracing::debug!(%peer, "ping failed, closing the connection: {e}");
                if self.swarm.close_connection(connection) {
                    self.shared.ping_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages: f,
            })) => {
                tracing::debug!(peer = %peer_id, "gossipsub could not send to a slow peer: {f:?}");
                // `publish` and `forward` count messages whichever way they failed; `timeout`
                // those of them that timed out.
                let failed = (f.publish + f.forward) as u64;
                let timeout = (f.timeout as u64).min(failed);
                self.shared.send_queue_full.fetch_add(failed - timeout, Ordering::Relaxed);
                self.shared.send_timeout.fetch_add(timeout, Ordering::Relaxed);
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause }, ..
            }
            | SwarmEvent::OutgoingConnectionError { error: DialError::Denied { cause }, .. }
                if cause.downcast_ref::<connection_limits::Exceeded>().is_some() =>
            {
                tracing::debug!("connection refused: {cause}");
                self.shared.connection_limit.fetch_add(1, Ordering::Relaxed);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let (Some(name), Ok(mut names)) =
                    (announced_name(&info.agent_version), self.shared.peer_names.lock())
                {
                    if self.swarm.is_connected(&peer_id) {
                        names.insert(peer_id, name);
                    }
                }
                let kad = &mut self.swarm.behaviour_mut().kad;
                let kad_peer = info.protocols.iter().any(|p| kad.protocol_names().contains(p));
                if kad_peer && !info.listen_addrs.is_empty() {
                    // The peer's addresses replace those it announced before (the routing
                    // table would otherwise append each announcement's for ever), and at most
                    // MAX_PEER_ADDRS of them are kept.
                    kad.remove_peer(&peer_id);
                    for addr in info.listen_addrs.into_iter().take(MAX_PEER_ADDRS) {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    if let Err(e) = self.swarm.dial(opts) {
                        tracing::debug!(%peer, "mDNS dial not started: {e}");
                    }
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                self.shared.peers.store(self.swarm.connected_peers().count(), Ordering::Relaxed);
                if let Ok(mut p) = self.shared.peer_addrs.lock() {
                    p.entry(peer_id).or_insert_with(|| endpoint.get_remote_address().clone());
                }
                if !self.bootstrapped && self.bootstrap.iter().any(|(p, _)| *p == peer_id) {
                    self.bootstrapped = true;
                    if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
                        tracing::debug!("kademlia bootstrap not started: {e}");
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                self.shared.peers.store(self.swarm.connected_peers().count(), Ordering::Relaxed);
                if num_established == 0 {
                    self.limiter.forget(&peer_id);
                    self.serving.forget(&peer_id);
                    if let Ok(mut p) = self.shared.peer_addrs.lock() {
                        p.remove(&peer_id);
                    }
                    if let Ok(mut n) = self.shared.peer_names.lock() {
                        n.remove(&peer_id);
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Ok(mut a) = self.shared.listen_addrs.lock() {
                    if !a.contains(&address) {
                        a.push(address);
                    }
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Ok(mut a) = self.shared.listen_addrs.lock() {
                    a.retain(|x| x != &address);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
            }
            _ => {}
        }
    }
}

/// Per-peer token buckets: `rate` tokens a second, at most `burst` saved up.
struct RateLimiter {
    rate: f64,
    burst: f64,
    peers: HashMap<PeerId, Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(per_sec: u32, burst: u32) -> Self {
        Self { rate: f64::from(per_sec), burst: f64::from(burst.max(1)), peers: HashMap::new() }
    }

    /// Takes a token from `peer`'s bucket at time `now`; false when it is empty.
    fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        let burst = self.burst;
        let b = self.peers.entry(peer).or_insert(Bucket { tokens: burst, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops a disconnected peer's bucket (the map stays bounded by the connection limit).
    fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_announces_its_name_and_its_peer_id_holds_its_key() {
        assert_eq!(announced_name(&agent_version("dc2")).as_deref(), Some("dc2"));
        assert_eq!(announced_name(&agent_version("")), None);
        assert_eq!(announced_name("surplus/0.1.0"), None);
        assert_eq!(announced_name("other/1 (x)"), None);
        // A name cannot close the parentheses early or hold control characters.
        assert_eq!(announced_name(&agent_version("a)b\nc")).as_deref(), Some("abc"));
        let key = identity::Keypair::ed25519_from_bytes([7u8; 32]).unwrap();
        let ed = key.public().try_into_ed25519().unwrap().to_bytes();
        assert_eq!(peer_key(&key.public().to_peer_id()), Some(ed));
    }

    const CHAIN: &str = "p2p-test";
    /// Bounded waits: at most this many polls of [`POLL`] each.
    const POLLS: usize = 600;
    const POLL: Duration = Duration::from_millis(50);

    /// Records every message it is asked about; rejects data starting with `reject`, ignores
    /// data starting with `ignore`.
    struct Recorder {
        reject: Option<&'static [u8]>,
        seen: Mutex<Vec<(Topic, Vec<u8>, PeerId)>>,
    }

    impl Recorder {
        fn new(reject: Option<&'static [u8]>) -> Arc<Self> {
            Arc::new(Self { reject, seen: Mutex::new(Vec::new()) })
        }
        fn count(&self, data: &[u8]) -> usize {
            self.seen.lock().unwrap().iter().filter(|(_, d, _)| d == data).count()
        }
        fn count_prefix(&self, prefix: &[u8]) -> usize {
            self.seen.lock().unwrap().iter().filter(|(_, d, _)| d.starts_with(prefix)).count()
        }
        fn sender_of(&self, data: &[u8]) -> Option<(Topic, PeerId)> {
            self.seen.lock().unwrap().iter().find(|(_, d, _)| d == data).map(|(t, _, p)| (*t, *p))
        }
    }

    impl Validator for Recorder {
        fn validate(&self, topic: Topic, data: &[u8], from: &PeerId) -> Verdict {
            self.seen.lock().unwrap().push((topic, data.to_vec(), *from));
            if self.reject.is_some_and(|r| data.starts_with(r)) {
                Verdict::Reject("test validator refuses it".into())
            } else if data.starts_with(b"ignore") {
                Verdict::Ignore
            } else {
                Verdict::Accept
            }
        }
    }

    fn listen(quic: bool) -> Vec<Multiaddr> {
        let a = if quic { "/ip4/127.0.0.1/udp/0/quic-v1" } else { "/ip4/127.0.0.1/tcp/0" };
        vec![a.parse().unwrap()]
    }

    struct Node {
        net: Gossip,
        seen: Arc<Recorder>,
    }

    async fn node(
        quic: bool,
        bootstrap: Vec<Multiaddr>,
        max_connections: u32,
        max_message_bytes: usize,
        rate: (u32, u32),
        reject: Option<&'static [u8]>,
    ) -> Node {
        let seen = Recorder::new(reject);
        let cfg = NetConfig {
            listen: listen(quic),
            bootstrap,
            mdns: false,
            max_connections,
            max_message_bytes,
            peer_msgs_per_sec: rate.0,
            peer_burst: rate.1,
            subscription_grace: SUBSCRIPTION_GRACE,
            name: format!("node-{}", rate.0),
        };
        let net =
            start(cfg, identity::Keypair::generate_ed25519(), CHAIN, seen.clone()).await.unwrap();
        Node { net, seen }
    }

    /// A dialable address of `g`: its bound address with `/p2p/<id>`.
    fn addr(g: &Gossip) -> Multiaddr {
        let a = g.listen_addrs().into_iter().next().expect("a bound address");
        assert!(!a.to_string().ends_with("/0") && !a.to_string().contains("/0/"), "{a}");
        a.with(Protocol::P2p(g.local_peer_id()))
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..POLLS {
            if done() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("gave up waiting for {what}");
    }

    /// Publishes probes from `from` until `to`'s validator has seen one (the mesh is formed).
    async fn mesh_ready(from: &Node, to: &Node) {
        for i in 0..100 {
            from.net.publish(Topic::Orders, format!("probe-{i}").into_bytes()).await.unwrap();
            for _ in 0..6 {
                tokio::time::sleep(POLL).await;
                if to.seen.count_prefix(b"probe-") > 0 {
                    return;
                }
            }
        }
        panic!("the gossip mesh never formed");
    }

    /// A–B–C, bootstrap B. A and C allow one connection each, so Kademlia cannot join them
    /// directly: everything between them passes through B.
    async fn line(quic: bool) -> (Node, Node, Node) {
        let b = node(quic, vec![], 8, 1024, (1000, 1000), Some(b"bad")).await;
        let a = node(quic, vec![addr(&b.net)], 1, 64 * 1024, (1000, 1000), None).await;
        let c = node(quic, vec![addr(&b.net)], 1, 64 * 1024, (1000, 1000), None).await;
        wait_for("A and C connected to B", || {
            a.net.peers() == 1 && c.net.peers() == 1 && b.net.peers() == 2
        })
        .await;
        mesh_ready(&a, &c).await;
        (a, b, c)
    }

    async fn line_scenario(quic: bool) {
        let (a, b, c) = line(quic).await;

        // Reaches C through B, on the topic it was sent on; C learns it from B.
        a.net.publish(Topic::Checkpoints, b"checkpoint-1".to_vec()).await.unwrap();
        a.net.publish(Topic::Orders, b"order-1".to_vec()).await.unwrap();
        wait_for("order-1 at C", || c.seen.count(b"order-1") == 1).await;
        assert_eq!(c.seen.sender_of(b"order-1"), Some((Topic::Orders, b.net.local_peer_id())));
        wait_for("checkpoint-1 at C", || c.seen.count(b"checkpoint-1") == 1).await;
        assert_eq!(c.seen.sender_of(b"checkpoint-1").unwrap().0, Topic::Checkpoints);

        // Rejected by B: not relayed to C, counted at B. Validation is in arrival order, so
        // once C has the marker sent after it, B has judged it.
        let before = b.net.stats();
        let score = b.net.peer_score(a.net.local_peer_id()).await.unwrap();
        a.net.publish(Topic::Orders, b"bad-1".to_vec()).await.unwrap();
        a.net.publish(Topic::Orders, b"marker-1".to_vec()).await.unwrap();
        wait_for("marker-1 at C", || c.seen.count(b"marker-1") == 1).await;
        assert_eq!(b.seen.count(b"bad-1"), 1);
        assert_eq!(c.seen.count(b"bad-1"), 0, "a rejected message was relayed");
        assert_eq!(b.net.stats().rejected, before.rejected + 1);
        // B's score of A fell by about one invalid delivery (10).
        let after = b.net.peer_score(a.net.local_peer_id()).await.unwrap();
        assert!(after < score - 5.0, "score {score} -> {after}");

        // Ignored by B: dropped, not relayed, counted as ignored.
        a.net.publish(Topic::Orders, b"ignore-1".to_vec()).await.unwrap();
        a.net.publish(Topic::Orders, b"marker-2".to_vec()).await.unwrap();
        wait_for("marker-2 at C", || c.seen.count(b"marker-2") == 1).await;
        assert_eq!(c.seen.count(b"ignore-1"), 0);
        assert_eq!(b.net.stats().ignored, before.ignored + 1);

        // Larger than B's 1 KiB limit (within A's): dropped at B before its validator.
        a.net.publish(Topic::Orders, vec![b'x'; 2000]).await.unwrap();
        a.net.publish(Topic::Orders, b"marker-3".to_vec()).await.unwrap();
        wait_for("marker-3 at C", || c.seen.count(b"marker-3") == 1).await;
        wait_for("B counts the oversized message", || b.net.stats().oversized == 1).await;
        assert_eq!(b.seen.count_prefix(b"xx"), 0);
        assert_eq!(c.seen.count_prefix(b"xx"), 0);
        // Larger than A's own limit: refused locally.
        let err = a.net.publish(Topic::Orders, vec![0; 64 * 1024 + 1]).await.unwrap_err();
        assert!(matches!(err, NetError::TooLarge { bytes: 65537, max: 65536 }), "{err}");

        // The same bytes published by A and by C (separately signed gossip messages): one
        // message id, validated once by each node.
        assert_eq!(a.net.publish(Topic::Orders, b"dup-1".to_vec()).await.unwrap(), Published::Sent);
        c.net.publish(Topic::Orders, b"dup-1".to_vec()).await.unwrap();
        // Publishing it again is not an error, and sends nothing new.
        assert_eq!(
            a.net.publish(Topic::Orders, b"dup-1".to_vec()).await.unwrap(),
            Published::AlreadySeen
        );
        a.net.publish(Topic::Orders, b"marker-4".to_vec()).await.unwrap();
        c.net.publish(Topic::Orders, b"marker-5".to_vec()).await.unwrap();
        wait_for("markers", || c.seen.count(b"marker-4") == 1 && a.seen.count(b"marker-5") == 1)
            .await;
        assert_eq!(b.seen.count(b"dup-1"), 1);
        assert!(a.seen.count(b"dup-1") <= 1 && c.seen.count(b"dup-1") <= 1);

        // A's messages never reached its own validator; accepted counters add up.
        assert_eq!(a.seen.count(b"order-1"), 0);
        assert!(c.net.stats().accepted >= 6, "{:?}", c.net.stats());
        // Every message taken for validation got its verdict: the queues are empty again.
        wait_for("empty queues", || {
            [&a, &b, &c].iter().all(|n| n.net.queues() == NetQueues::default())
        })
        .await;

        for n in [a, b, c] {
            let handle = n.net.clone();
            n.net.shutdown().await;
            assert!(matches!(
                handle.publish(Topic::Orders, b"late".to_vec()).await,
                Err(NetError::Stopped)
            ));
        }
    }

    /// Found by the crash loop: a node that publishes before any peer is connected is told
    /// so (gossipsub drops the message without remembering it), and the same message goes out
    /// once a peer is there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_loop_a_message_that_reached_no_peer_is_sent_when_published_again() {
        let lone = node(false, vec![], 8, 64 * 1024, (1000, 1000), None).await;
        let r = lone.net.publish(Topic::Orders, b"early".to_vec()).await.unwrap();
        assert_eq!(r, Published::NoPeers);
        let peer = node(false, vec![addr(&lone.net)], 8, 64 * 1024, (1000, 1000), None).await;
        wait_for("connected", || lone.net.peers() == 1 && peer.net.peers() == 1).await;
        let mut sent = false;
        for _ in 0..POLLS {
            if lone.net.publish(Topic::Orders, b"early".to_vec()).await.unwrap() == Published::Sent
            {
                sent = true;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        assert!(sent, "the message was never sent once a peer subscribed");
        wait_for("the peer validates it", || peer.seen.count(b"early") == 1).await;
        for n in [lone, peer] {
            n.net.shutdown().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn line_over_tcp() {
        line_scenario(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn line_over_quic() {
        line_scenario(true).await;
    }

    /// A hub with two spokes: F floods over QUIC, D sends a few over TCP. F's excess is
    /// rejected at the hub; D's messages all get through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooding_peer_is_rate_limited_and_others_get_through() {
        let seen = Recorder::new(None);
        let cfg = NetConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
            ],
            bootstrap: vec![],
            mdns: false,
            max_connections: 8,
            max_message_bytes: 1024,
            peer_msgs_per_sec: 5,
            peer_burst: 10,
            subscription_grace: SUBSCRIPTION_GRACE,
            name: String::new(),
        };
        let hub =
            start(cfg, identity::Keypair::generate_ed25519(), CHAIN, seen.clone()).await.unwrap();
        let hub = Node { net: hub, seen };
        let addrs = hub.net.listen_addrs();
        assert_eq!(addrs.len(), 2);
        let with_id = |quic: bool| {
            let a = addrs.iter().find(|a| a.to_string().contains("quic") == quic).unwrap();
            a.clone().with(Protocol::P2p(hub.net.local_peer_id()))
        };
        let flooder = node(true, vec![with_id(true)], 1, 1024, (1000, 1000), None).await;
        let honest = node(false, vec![with_id(false)], 1, 1024, (1000, 1000), None).await;
        wait_for("spokes connected", || hub.net.peers() == 2).await;
        mesh_ready(&flooder, &hub).await;
        mesh_ready(&honest, &hub).await;

        for i in 0..200 {
            flooder.net.publish(Topic::Orders, format!("flood-{i}").into_bytes()).await.unwrap();
        }
        for i in 0..3 {
            honest.net.publish(Topic::Orders, format!("honest-{i}").into_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        wait_for("honest messages at the hub", || hub.seen.count_prefix(b"honest-") == 3).await;
        wait_for("flood rate-limited", || hub.net.stats().rate_limited > 0).await;
        // At most the burst and what the rate refilled got through; never the whole flood.
        assert!(hub.seen.count_prefix(b"flood-") < 100, "{}", hub.seen.count_prefix(b"flood-"));
        // The rejected excess sank the flooder's score (three put it below the graylist
        // threshold, −80, after which the hub ignored it; the counter has decayed a little
        // since); the honest peer keeps a good score.
        let flooder_score = hub.net.peer_score(flooder.net.local_peer_id()).await.unwrap();
        assert!(flooder_score < -50.0, "{flooder_score}");
        assert!(hub.net.peer_score(honest.net.local_peer_id()).await.unwrap() >= 0.0);
        // The flood was not relayed to the honest spoke beyond what the hub accepted.
        assert!(honest.seen.count_prefix(b"flood-") <= hub.seen.count_prefix(b"flood-"));
        for n in [flooder, honest, hub] {
            n.net.shutdown().await;
        }
    }

    #[test]
    fn token_bucket() {
        let mut l = RateLimiter::new(10, 3);
        let (p, q) = (PeerId::random(), PeerId::random());
        let t = Instant::now();
        assert!((0..3).all(|_| l.allow(p, t)));
        assert!(!l.allow(p, t));
        // Another peer has its own bucket.
        assert!(l.allow(q, t));
        // 100 ms at 10/s refills one token; the bucket never holds more than the burst.
        assert!(l.allow(p, t + Duration::from_millis(100)));
        assert!(!l.allow(p, t + Duration::from_millis(100)));
        let later = t + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| l.allow(p, later)).count(), 3);
        l.forget(&p);
        assert!(l.allow(p, later));
    }

    #[tokio::test]
    async fn bad_configuration_is_named() {
        let base = NetConfig { listen: listen(false), ..NetConfig::default() };
        let key = identity::Keypair::generate_ed25519;
        let cases = [
            (
                NetConfig {
                    bootstrap: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()],
                    ..base.clone()
                },
                "/p2p/",
            ),
            (NetConfig { max_connections: 0, ..base.clone() }, "max_connections"),
            (NetConfig { peer_burst: 0, ..base.clone() }, "peer_burst"),
            (NetConfig { listen: vec![], ..base.clone() }, "listen"),
            (
                NetConfig { subscription_grace: Duration::ZERO, ..base.clone() },
                "subscription_grace",
            ),
        ];
        for (cfg, needle) in cases {
            let err = start(cfg, key(), CHAIN, Recorder::new(None)).await.err().unwrap();
            assert!(err.to_string().contains(needle), "{err}");
        }
        // An address that is not this machine's (TEST-NET-1).
        let cfg = NetConfig { listen: vec!["/ip4/192.0.2.1/tcp/0".parse().unwrap()], ..base };
        let err = start(cfg, key(), CHAIN, Recorder::new(None)).await.err().unwrap();
        assert!(matches!(err, NetError::Listen { .. }), "{err}");
    }

    #[test]
    fn topic_names() {
        assert_eq!(Topic::Orders.name("c1"), "surplus/c1/orders/v3");
        assert_eq!(Topic::Checkpoints.name("c1"), "surplus/c1/checkpoints/v2");
        assert!(NetConfig::default().validate().is_ok());
    }

    /// The transform counts what gossipsub drops after it for the message's source or topic,
    /// and passes every message through unchanged.
    #[test]
    fn the_counting_transform_sorts_messages_by_what_gossipsub_does_next() {
        use gossipsub::DataTransform;
        let local = PeerId::random();
        let orders = IdentTopic::new(Topic::Orders.name(CHAIN)).hash();
        let checkpoints = IdentTopic::new(Topic::Checkpoints.name(CHAIN)).hash();
        let other = IdentTopic::new("elsewhere").hash();
        let counts = Arc::new(RawDrops::default());
        let t = CountingTransform {
            local,
            topics: [orders.clone(), checkpoints.clone()],
            counts: counts.clone(),
        };
        let raw = |source: PeerId, topic: &TopicHash| gossipsub::RawMessage {
            source: Some(source),
            data: b"data".to_vec(),
            sequence_number: Some(7),
            topic: topic.clone(),
            signature: None,
            key: None,
            validated: false,
        };
        let someone = PeerId::random();
        for (source, topic) in [
            (someone, &orders),
            (someone, &checkpoints),
            (local, &orders),
            (local, &other),
            (someone, &other),
            (someone, &other),
        ] {
            let m = t.inbound_transform(raw(source, topic)).unwrap();
            assert_eq!(
                (m.source, m.data, m.sequence_number),
                (Some(source), b"data".to_vec(), Some(7))
            );
            assert_eq!(&m.topic, topic);
        }
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(n(&counts.self_origin_ours), 1);
        assert_eq!(n(&counts.self_origin_other), 1);
        assert_eq!(n(&counts.unsubscribed_topic), 2);
        assert_eq!(t.outbound_transform(&orders, b"x".to_vec()).unwrap(), b"x");
    }

    /// Gossipsub's registry, as the text encoder writes it, read back per topic.
    #[test]
    fn gossipsub_metrics_are_read_back_per_topic() {
        let mut registry = Registry::default();
        let key = identity::Keypair::generate_ed25519();
        let cfg = NetConfig { listen: listen(false), ..NetConfig::default() };
        let orders = IdentTopic::new(Topic::Orders.name(CHAIN));
        let checkpoints = IdentTopic::new(Topic::Checkpoints.name(CHAIN));
        let topics = [orders.hash(), checkpoints.hash()];
        let counts = Arc::new(RawDrops::default());
        let mut b =
            build_behaviour(&key, &cfg, CHAIN, &topics, &counts, &mut registry, false).unwrap();
        b.gossipsub.subscribe(&orders).unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("invalid_messages_per_topic"), "{text}");
        assert!(text.contains("topic_msg_recv_counts_unfiltered"), "{text}");
        assert_eq!(topic_counter(&text, "invalid_messages_per_topic", &topics[0]), 0);
        let sample = "# TYPE x counter\n\
                      x_total{hash=\"surplus/c/orders/v1\"} 3\n\
                      x_total{hash=\"surplus/c/orders/v1x\"} 5\n\
                      x_unfiltered_total{hash=\"surplus/c/orders/v1\"} 9\n";
        let t = IdentTopic::new("surplus/c/orders/v1").hash();
        assert_eq!(topic_counter(sample, "x", &t), 3);
        assert_eq!(topic_counter(sample, "x_unfiltered", &t), 9);
        assert_eq!(topic_counter(sample, "y", &t), 0);
    }

    /// Only a received RPC is recognised, not gossipsub's other handler events.
    #[test]
    fn a_received_rpc_is_told_from_its_debug_text() {
        #[derive(Debug)]
        #[allow(dead_code)]
        enum HandlerEvent {
            Message { rpc: Vec<u8>, invalid_messages: Vec<u8> },
            PeerKind(u8),
            MessageDropped(u8),
        }
        assert!(is_received_rpc(&HandlerEvent::Message {
            rpc: vec![1; 100_000],
            invalid_messages: vec![]
        }));
        assert!(!is_received_rpc(&HandlerEvent::PeerKind(1)));
        assert!(!is_received_rpc(&HandlerEvent::MessageDropped(1)));
    }

    /// Found by the partition test: after a partition healed, a peer that had kept its old
    /// connection never re-sent its subscriptions, so orders acknowledged by the cut-off node
    /// were never gossiped. Such a peer is now disconnected after the grace period, once.
    #[test]
    fn partition_heal_peer_without_subscription_is_reconnected_after_grace() {
        let grace = Duration::from_secs(10);
        let mut watch = SubscriptionWatch::new(grace);
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert!(watch.stale(t0, [a, b].into_iter()).is_empty());
        // b's subscription arrives: its clock stops.
        assert!(watch.stale(t0 + Duration::from_secs(5), [a].into_iter()).is_empty());
        assert_eq!(watch.stale(t0 + grace, [a].into_iter()), vec![a]);
        // a is reported once, then its clock starts again; b lacking again starts from now.
        assert!(watch.stale(t0 + grace, [a, b].into_iter()).is_empty());
        assert_eq!(watch.stale(t0 + 2 * grace, [a, b].into_iter()).len(), 2);
    }
}
