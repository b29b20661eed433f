//! Snapshot state sync transport: `/surplus/snapshot/1`, a request-response protocol on libp2p.
//!
//! A node that serves snapshots passes a [`SnapshotSource`] to [`crate::p2p::start_with`]; its
//! network task answers requests from the source, which runs on tokio's blocking pool. A node
//! that must catch up before it starts uses a [`SnapshotClient`]: a minimal swarm of its own
//! that dials the bootstrap peers and asks them for the newest manifest and its chunks.
//!
//! The snapshot format is opaque here: manifests and chunks are bytes.
//!
//! Wire format (every read is bounded):
//! - request (at most [`MAX_SNAPSHOT_REQUEST`] bytes): `0x01` for [`SnapRequest::Latest`];
//!   `0x02`, height (u64 big-endian), index (u32 big-endian) for [`SnapRequest::Chunk`];
//!   `0x03` for [`SnapRequest::Pending`] (the entries the peer holds for a block: a node whose
//!   journal was damaged asks for what it may have lost; the answer's bytes are the node's
//!   business, for Surplus a sequence of length-prefixed entries).
//! - response: `0x00`, length (u32 big-endian), that many bytes for [`SnapResponse::Data`]
//!   (at most [`MAX_SNAPSHOT_RESPONSE`]); `0x01` for [`SnapResponse::NotFound`]; `0x02` for
//!   [`SnapResponse::Busy`].
//!
//! ```no_run
//! # async fn run(key: libp2p::identity::Keypair, boot: Vec<libp2p::Multiaddr>) {
//! use std::time::Duration;
//! use surplus_net::snapfetch::SnapshotClient;
//! let client = SnapshotClient::connect(key, boot, Duration::from_secs(10)).await.unwrap();
//! for peer in client.peers() {
//!     if let Ok(Some(manifest)) = client.latest(peer).await {
//!         // Decode the manifest, then fetch its chunks with `client.chunk(peer, h, i)`;
//!         // a peer that sends a bad chunk is `client.penalise(peer, "bad chunk")`d.
//!         let _ = manifest;
//!     }
//! }
//! client.close().await;
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/surplus/snapshot/1");
/// Largest request read, bytes (the longest request is 13).
pub const MAX_SNAPSHOT_REQUEST: usize = 64;
/// Largest response data sent or accepted, bytes: 16 MiB.
pub const MAX_SNAPSHOT_RESPONSE: usize = 16 * 1024 * 1024;
/// How long a request may take, from opening its stream to the last byte of its response.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests a serving node works on at once for one peer; beyond, it answers
/// [`SnapResponse::Busy`].
pub const SERVE_PER_PEER: usize = 4;
/// Requests a serving node works on at once for all peers together (bounds the memory held by
/// responses being read or sent: 8 × 16 MiB); beyond, it answers [`SnapResponse::Busy`].
pub const SERVE_TOTAL: usize = 8;
/// How long after its last snapshot request a peer counts as a snapshot client, which the
/// serving node does not disconnect for lacking gossip subscriptions (see [`crate::p2p`]).
pub const CLIENT_GRACE: Duration = Duration::from_secs(60);

/// Request streams per connection (inbound and outbound together). Above [`SERVE_PER_PEER`] so
/// that a peer asking too much at once gets [`SnapResponse::Busy`] rather than a reset stream.
const STREAMS_PER_CONNECTION: usize = 16;
/// Requests a client has in flight at once; more wait for a free slot.
const CLIENT_IN_FLIGHT: usize = 16;
/// Commands waiting for the client's task.
const CLIENT_COMMANDS: usize = 64;
/// How long the client keeps a connection on which nothing is asked.
const CLIENT_IDLE: Duration = Duration::from_secs(120);
/// How often the client makes sure that no penalised peer is still connected.
const PENALTY_SWEEP: Duration = Duration::from_secs(1);

const REQ_LATEST: u8 = 0x01;
const REQ_CHUNK: u8 = 0x02;
const REQ_PENDING: u8 = 0x03;
const RESP_DATA: u8 = 0x00;
const RESP_NOT_FOUND: u8 = 0x01;
const RESP_BUSY: u8 = 0x02;

/// Serves snapshots to other nodes. Its methods may do file IO: the network calls them on
/// tokio's blocking pool, never on the task that owns the swarm.
pub trait SnapshotSource: Send + Sync + 'static {
    /// The manifest of the newest snapshot, if there is one.
    fn latest(&self) -> Option<Vec<u8>>;
    /// Chunk `index` of the snapshot at `height`, if this node has it.
    fn chunk(&self, height: u64, index: u32) -> Option<Vec<u8>>;
    /// The entries this node holds for a block, encoded as the node chooses; `None` if it does
    /// not serve them.
    fn pending(&self) -> Option<Vec<u8>> {
        None
    }
}

/// A request on `/surplus/snapshot/1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapRequest {
    /// The peer's newest snapshot manifest.
    Latest,
    /// One chunk of the snapshot at `height`.
    Chunk {
        /// The snapshot's height.
        height: u64,
        /// The chunk's index in it.
        index: u32,
    },
    /// The entries the peer holds for a block ([`SnapshotSource::pending`]).
    Pending,
}

/// A response on `/surplus/snapshot/1`.
#[derive(Clone, PartialEq, Eq)]
pub enum SnapResponse {
    /// The manifest or chunk asked for.
    Data(Vec<u8>),
    /// The peer has no such snapshot or chunk.
    NotFound,
    /// The peer is serving as many requests as it will: ask later, or ask another peer.
    Busy,
}

impl std::fmt::Debug for SnapResponse {
    // Never print up to 16 MiB of data into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapResponse::Data(d) => write!(f, "Data({} bytes)", d.len()),
            SnapResponse::NotFound => f.write_str("NotFound"),
            SnapResponse::Busy => f.write_str("Busy"),
        }
    }
}

impl SnapRequest {
    /// The request's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SnapRequest::Latest => vec![REQ_LATEST],
            SnapRequest::Pending => vec![REQ_PENDING],
            SnapRequest::Chunk { height, index } => {
                let mut out = Vec::with_capacity(13);
                out.push(REQ_CHUNK);
                out.extend_from_slice(&height.to_be_bytes());
                out.extend_from_slice(&index.to_be_bytes());
                out
            }
        }
    }

    /// Reads a request from its bytes, refusing anything else (trailing bytes included).
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        match bytes {
            [REQ_LATEST] => Ok(SnapRequest::Latest),
            [REQ_PENDING] => Ok(SnapRequest::Pending),
            [REQ_CHUNK, rest @ ..] if rest.len() == 12 => {
                let (h, i) = rest.split_at(8);
                let height = u64::from_be_bytes(h.try_into().map_err(|_| invalid("height"))?);
                let index = u32::from_be_bytes(i.try_into().map_err(|_| invalid("index"))?);
                Ok(SnapRequest::Chunk { height, index })
            }
            [] => Err(invalid("empty snapshot request")),
            [tag, ..] => Err(invalid(&format!(
                "snapshot request with tag {tag:#04x} and {} bytes is not one we know",
                bytes.len()
            ))),
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// A message longer than its limit: carried inside an [`io::Error`] of kind `InvalidData` so
/// that the client can tell it from other failures.
#[derive(Debug, thiserror::Error)]
#[error("snapshot message of {bytes} bytes is larger than the limit of {max} bytes")]
pub(crate) struct TooLarge {
    bytes: u64,
    max: usize,
}

fn too_large(bytes: u64, max: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TooLarge { bytes, max })
}

/// The protocol's codec: the wire format of the module docs, with bounded reads.
#[derive(Clone, Debug)]
pub(crate) struct Codec {
    max_response: usize,
}

impl Codec {
    pub(crate) fn new(max_response: usize) -> Self {
        Self { max_response: max_response.min(MAX_SNAPSHOT_RESPONSE) }
    }
}

/// Fails unless the stream ends here (the other side closes its half after its message).
async fn expect_end<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<()> {
    let mut extra = [0u8; 1];
    match io.read(&mut extra).await? {
        0 => Ok(()),
        _ => Err(invalid("trailing bytes after a snapshot response")),
    }
}

#[async_trait::async_trait]
impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = SnapRequest;
    type Response = SnapResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SnapRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::with_capacity(16);
        io.take(MAX_SNAPSHOT_REQUEST as u64 + 1).read_to_end(&mut buf).await?;
        if buf.len() > MAX_SNAPSHOT_REQUEST {
            return Err(too_large(buf.len() as u64, MAX_SNAPSHOT_REQUEST));
        }
        SnapRequest::decode(&buf)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SnapResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut tag = [0u8; 1];
        io.read_exact(&mut tag).await?;
        let response = match tag[0] {
            RESP_DATA => {
                let mut len = [0u8; 4];
                io.read_exact(&mut len).await?;
                let len = u64::from(u32::from_be_bytes(len));
                if len > self.max_response as u64 {
                    return Err(too_large(len, self.max_response));
                }
                // Grown as bytes arrive: a peer announcing a length it never sends costs no
                // more memory than it sent.
                let mut data = Vec::new();
                io.take(len).read_to_end(&mut data).await?;
                if data.len() as u64 != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("snapshot response ended after {} of {len} bytes", data.len()),
                    ));
                }
                SnapResponse::Data(data)
            }
            RESP_NOT_FOUND => SnapResponse::NotFound,
            RESP_BUSY => SnapResponse::Busy,
            t => return Err(invalid(&format!("snapshot response with unknown tag {t:#04x}"))),
        };
        expect_end(io).await?;
        Ok(response)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SnapRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SnapResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            SnapResponse::Data(data) => {
                if data.len() > MAX_SNAPSHOT_RESPONSE {
                    return Err(too_large(data.len() as u64, MAX_SNAPSHOT_RESPONSE));
                }
                let len = u32::try_from(data.len())
                    .map_err(|_| too_large(data.len() as u64, MAX_SNAPSHOT_RESPONSE))?;
                io.write_all(&[RESP_DATA]).await?;
                io.write_all(&len.to_be_bytes()).await?;
                io.write_all(&data).await
            }
            SnapResponse::NotFound => io.write_all(&[RESP_NOT_FOUND]).await,
            SnapResponse::Busy => io.write_all(&[RESP_BUSY]).await,
        }
    }
}

/// The serving side's request-response behaviour: inbound only.
pub(crate) fn server_behaviour() -> request_response::Behaviour<Codec> {
    request_response::Behaviour::with_codec(
        Codec::new(MAX_SNAPSHOT_RESPONSE),
        [(PROTOCOL, ProtocolSupport::Inbound)],
        request_response::Config::default()
            .with_request_timeout(DEFAULT_REQUEST_TIMEOUT)
            .with_max_concurrent_streams(STREAMS_PER_CONNECTION),
    )
}

/// Answers `request` from `source`. Runs on the blocking pool. A source's answer larger than
/// [`MAX_SNAPSHOT_RESPONSE`] is not sent (`None`: the request fails at the other side).
pub(crate) fn answer(source: &dyn SnapshotSource, request: SnapRequest) -> Option<SnapResponse> {
    let data = match request {
        SnapRequest::Latest => source.latest(),
        SnapRequest::Chunk { height, index } => source.chunk(height, index),
        SnapRequest::Pending => source.pending(),
    };
    match data {
        None => Some(SnapResponse::NotFound),
        Some(d) if d.len() > MAX_SNAPSHOT_RESPONSE => {
            tracing::warn!(
                ?request,
                bytes = d.len(),
                max = MAX_SNAPSHOT_RESPONSE,
                "the snapshot source returned more than one response may carry: not sent"
            );
            None
        }
        Some(d) => Some(SnapResponse::Data(d)),
    }
}

/// The serving node's book of requests in progress: who asks, how many at once, and who asked
/// recently. Bounded: by [`SERVE_TOTAL`] requests, and by the connected peers (a peer is
/// forgotten when its last connection closes).
/// `Id` is request-response's [`InboundRequestId`] (numbers in tests).
pub(crate) struct ServeBook<Id = InboundRequestId> {
    in_flight: HashMap<Id, PeerId>,
    per_peer: HashMap<PeerId, usize>,
    last_request: HashMap<PeerId, Instant>,
}

impl<Id> Default for ServeBook<Id> {
    fn default() -> Self {
        Self { in_flight: HashMap::new(), per_peer: HashMap::new(), last_request: HashMap::new() }
    }
}

impl<Id: std::hash::Hash + Eq> ServeBook<Id> {
    /// Whether to work on request `id` from `peer` received at `now` (then it is in progress
    /// until [`ServeBook::finished`]); false means answer [`SnapResponse::Busy`].
    pub(crate) fn admit(&mut self, peer: PeerId, id: Id, now: Instant) -> bool {
        self.last_request.insert(peer, now);
        let mine = self.per_peer.get(&peer).copied().unwrap_or(0);
        if mine >= SERVE_PER_PEER || self.in_flight.len() >= SERVE_TOTAL {
            return false;
        }
        self.in_flight.insert(id, peer);
        *self.per_peer.entry(peer).or_insert(0) += 1;
        true
    }

    /// Request `id` is over (its response was sent, or it failed). Unknown ids (answers of
    /// `Busy`) are ignored.
    pub(crate) fn finished(&mut self, id: Id) {
        if let Some(peer) = self.in_flight.remove(&id) {
            if let Some(n) = self.per_peer.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_peer.remove(&peer);
                }
            }
        }
    }

    /// Whether `peer` is a snapshot client now: a request of its in progress, or one received
    /// within [`CLIENT_GRACE`].
    pub(crate) fn is_client(&self, peer: &PeerId, now: Instant) -> bool {
        self.per_peer.contains_key(peer)
            || self
                .last_request
                .get(peer)
                .is_some_and(|t| now.saturating_duration_since(*t) < CLIENT_GRACE)
    }

    /// `peer`'s last connection closed. Its requests in progress stay counted until they end
    /// (request-response reports each as failed).
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.last_request.remove(peer);
    }

    /// Requests in progress.
    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> usize {
        self.in_flight.len()
    }
}

/// Why fetching from a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A peer address is unusable.
    #[error("peer address {addr}: {reason}")]
    BadAddress {
        /// The address.
        addr: Multiaddr,
        /// What is wrong with it.
        reason: String,
    },
    /// The client's swarm could not be built.
    #[error("could not build the snapshot client: {0}")]
    Build(String),
    /// No peer could be connected to.
    #[error("none of the {tried} snapshot peers could be connected to within {timeout:?}")]
    NoPeers {
        /// How many peers were dialled.
        tried: usize,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The peer is not connected: not one given to `connect`, or dialling it again failed.
    #[error("peer {peer} is not connected (not a bootstrap peer, or unreachable)")]
    NotConnected {
        /// The peer.
        peer: PeerId,
    },
    /// The peer was penalised in this session and is not asked again.
    #[error("peer {peer} was penalised in this session and is not asked again")]
    Penalised {
        /// The peer.
        peer: PeerId,
    },
    /// The peer did not answer in time.
    #[error("peer {peer} did not answer within {timeout:?}")]
    Timeout {
        /// The peer.
        peer: PeerId,
        /// The request timeout.
        timeout: Duration,
    },
    /// The connection closed before the answer came.
    #[error("peer {peer} went away before answering")]
    PeerGone {
        /// The peer.
        peer: PeerId,
    },
    /// The peer is serving as many requests as it will.
    #[error("peer {peer} is busy: ask again later, or ask another peer")]
    Busy {
        /// The peer.
        peer: PeerId,
    },
    /// The peer does not speak `/surplus/snapshot/1` (or serves no snapshots).
    #[error("peer {peer} does not serve snapshots ({PROTOCOL})")]
    Unsupported {
        /// The peer.
        peer: PeerId,
    },
    /// The peer announced a response larger than the limit; it was not read.
    #[error("peer {peer} sent a response of {bytes} bytes, more than the limit of {max}")]
    TooLarge {
        /// The peer.
        peer: PeerId,
        /// The announced length.
        bytes: u64,
        /// The limit.
        max: usize,
    },
    /// Reading or writing the request's stream failed otherwise (a malformed response too).
    #[error("request to peer {peer} failed: {reason}")]
    Io {
        /// The peer.
        peer: PeerId,
        /// What failed.
        reason: String,
    },
    /// The client was closed.
    #[error("the snapshot client has stopped")]
    Stopped,
}

/// Settings of a [`SnapshotClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// Largest response accepted, bytes (at most, and by default, [`MAX_SNAPSHOT_RESPONSE`]).
    pub max_response: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { request_timeout: DEFAULT_REQUEST_TIMEOUT, max_response: MAX_SNAPSHOT_RESPONSE }
    }
}

#[derive(NetworkBehaviour)]
struct ClientBehaviour {
    // The serving node closes connections whose pings fail or are not supported.
    ping: ping::Behaviour,
    snapshot: request_response::Behaviour<Codec>,
}

type Reply = oneshot::Sender<Result<SnapResponse, FetchError>>;

enum ClientCommand {
    Request { peer: PeerId, request: SnapRequest, reply: Reply },
    Penalise { peer: PeerId },
    Close,
}

#[derive(Default)]
struct ClientShared {
    connected: Mutex<HashSet<PeerId>>,
    penalised: Mutex<HashSet<PeerId>>,
}

impl ClientShared {
    fn is_penalised(&self, peer: &PeerId) -> bool {
        self.penalised.lock().map(|p| p.contains(peer)).unwrap_or(false)
    }
}

/// Dials so far: connected peers, and dials that failed.
#[derive(Clone, Copy, Default)]
struct DialStatus {
    connected: usize,
    failed: usize,
}

/// Fetches snapshots from peers before the node starts: a swarm of its own (TCP or QUIC, noise,
/// yamux; ping; `/surplus/snapshot/1` as a client only) that listens nowhere. Cloning it gives
/// another handle to the same client; requests may run from several tasks at once (at most 16
/// in flight, the rest wait).
#[derive(Clone)]
pub struct SnapshotClient {
    commands: mpsc::Sender<ClientCommand>,
    shared: Arc<ClientShared>,
    slots: Arc<Semaphore>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SnapshotClient {
    /// Dials every peer in `peers` (each address ending in `/p2p/<peer id>`) and returns once
    /// one is connected; the others may connect later. Fails if none is within `timeout`.
    /// A peer whose connection closed (a serving node closes one idle for a minute) is dialled
    /// again when next asked; no other peer is ever dialled.
    pub async fn connect(
        keypair: identity::Keypair,
        peers: Vec<Multiaddr>,
        timeout: Duration,
    ) -> Result<SnapshotClient, FetchError> {
        Self::connect_with(keypair, peers, timeout, ClientConfig::default()).await
    }

    /// [`SnapshotClient::connect`] with settings.
    pub async fn connect_with(
        keypair: identity::Keypair,
        peers: Vec<Multiaddr>,
        timeout: Duration,
        cfg: ClientConfig,
    ) -> Result<SnapshotClient, FetchError> {
        let local = keypair.public().to_peer_id();
        let mut targets = Vec::with_capacity(peers.len());
        for addr in peers {
            let peer = match addr.iter().last() {
                Some(Protocol::P2p(peer)) => peer,
                _ => {
                    return Err(FetchError::BadAddress {
                        addr,
                        reason: "must end in /p2p/<peer id>".into(),
                    })
                }
            };
            if peer == local {
                return Err(FetchError::BadAddress { addr, reason: "is this node itself".into() });
            }
            targets.push((peer, addr));
        }
        if targets.is_empty() {
            return Err(FetchError::NoPeers { tried: 0, timeout });
        }
        let behaviour = ClientBehaviour {
            ping: ping::Behaviour::default(),
            snapshot: request_response::Behaviour::with_codec(
                Codec::new(cfg.max_response),
                [(PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default()
                    .with_request_timeout(cfg.request_timeout)
                    .with_max_concurrent_streams(STREAMS_PER_CONNECTION),
            ),
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| FetchError::Build(format!("TCP transport: {e}")))?
            .with_quic()
            .with_behaviour(move |_| behaviour)
            .map_err(|e| FetchError::Build(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(CLIENT_IDLE))
            .build();
        let tried = targets.len();
        let mut failed_now = 0;
        let known: HashMap<PeerId, Multiaddr> = targets.iter().cloned().collect();
        for (peer, addr) in targets {
            if let Err(e) = swarm.dial(DialOpts::peer_id(peer).addresses(vec![addr]).build()) {
                tracing::debug!(%peer, "snapshot dial not started: {e}");
                failed_now += 1;
            }
        }
        let (status_tx, mut status) =
            watch::channel(DialStatus { connected: 0, failed: failed_now });
        let (commands, command_rx) = mpsc::channel(CLIENT_COMMANDS);
        let shared = Arc::new(ClientShared::default());
        let task = ClientTask {
            swarm,
            shared: shared.clone(),
            pending: HashMap::new(),
            known,
            request_timeout: cfg.request_timeout,
            status: status_tx,
        };
        let handle = tokio::spawn(task.run(command_rx));
        let client = SnapshotClient {
            commands,
            shared,
            slots: Arc::new(Semaphore::new(CLIENT_IN_FLIGHT)),
            task: Arc::new(Mutex::new(Some(handle))),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let s = *status.borrow_and_update();
            if s.connected > 0 {
                return Ok(client);
            }
            if s.failed >= tried {
                break;
            }
            match tokio::time::timeout_at(deadline, status.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        client.close().await;
        Err(FetchError::NoPeers { tried, timeout })
    }

    /// Connected peers that have not been penalised.
    pub fn peers(&self) -> Vec<PeerId> {
        let connected = self.shared.connected.lock().map(|c| c.clone()).unwrap_or_default();
        let mut out: Vec<PeerId> =
            connected.into_iter().filter(|p| !self.shared.is_penalised(p)).collect();
        out.sort();
        out
    }

    /// `peer`'s newest snapshot manifest; `None` if it has none.
    pub async fn latest(&self, peer: PeerId) -> Result<Option<Vec<u8>>, FetchError> {
        self.ask(peer, SnapRequest::Latest).await
    }

    /// The entries `peer` holds for a block ([`SnapshotSource::pending`]); `None` if it does
    /// not serve them.
    pub async fn pending(&self, peer: PeerId) -> Result<Option<Vec<u8>>, FetchError> {
        self.ask(peer, SnapRequest::Pending).await
    }

    /// Chunk `index` of the snapshot at `height` from `peer`; `None` if it does not have it.
    pub async fn chunk(
        &self,
        peer: PeerId,
        height: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, FetchError> {
        self.ask(peer, SnapRequest::Chunk { height, index }).await
    }

    async fn ask(&self, peer: PeerId, request: SnapRequest) -> Result<Option<Vec<u8>>, FetchError> {
        if self.shared.is_penalised(&peer) {
            return Err(FetchError::Penalised { peer });
        }
        let _slot = self.slots.acquire().await.map_err(|_| FetchError::Stopped)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(ClientCommand::Request { peer, request, reply })
            .await
            .map_err(|_| FetchError::Stopped)?;
        match answer.await.map_err(|_| FetchError::Stopped)?? {
            SnapResponse::Data(d) => Ok(Some(d)),
            SnapResponse::NotFound => Ok(None),
            SnapResponse::Busy => Err(FetchError::Busy { peer }),
        }
    }

    /// Disconnects `peer` and never asks it again in this session (say why: it is logged).
    pub fn penalise(&self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, "snapshot peer penalised: {reason}");
        if let Ok(mut p) = self.shared.penalised.lock() {
            p.insert(peer);
        }
        // When the queue is full the task's periodic sweep disconnects the peer instead.
        let _ = self.commands.try_send(ClientCommand::Penalise { peer });
    }

    /// Stops the client: closes its connections and waits for its task to end (requests of
    /// other handles then fail with [`FetchError::Stopped`]).
    pub async fn close(self) {
        let _ = self.commands.send(ClientCommand::Close).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct ClientTask {
    swarm: Swarm<ClientBehaviour>,
    shared: Arc<ClientShared>,
    /// Requests sent and not yet answered (at most [`CLIENT_IN_FLIGHT`]).
    pending: HashMap<OutboundRequestId, (PeerId, Reply)>,
    /// The peers given to `connect`, and their addresses.
    known: HashMap<PeerId, Multiaddr>,
    request_timeout: Duration,
    status: watch::Sender<DialStatus>,
}

impl ClientTask {
    async fn run(mut self, mut commands: mpsc::Receiver<ClientCommand>) {
        let mut sweep = tokio::time::interval(PENALTY_SWEEP);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(ClientCommand::Request { peer, request, reply }) => {
                        self.request(peer, request, reply);
                    }
                    Some(ClientCommand::Penalise { peer }) => {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                    Some(ClientCommand::Close) | None => break,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = sweep.tick() => self.sweep(),
            }
        }
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(FetchError::Stopped));
        }
        tracing::debug!("snapshot client stopped");
    }

    fn request(&mut self, peer: PeerId, request: SnapRequest, reply: Reply) {
        if self.shared.is_penalised(&peer) {
            let _ = reply.send(Err(FetchError::Penalised { peer }));
            return;
        }
        let connected = self.swarm.is_connected(&peer);
        let rr = &mut self.swarm.behaviour_mut().snapshot;
        let id = if connected {
            rr.send_request(&peer, request)
        } else if let Some(addr) = self.known.get(&peer) {
            // A serving node closes a connection idle for a minute: dial it again.
            rr.send_request_with_addresses(&peer, request, vec![addr.clone()])
        } else {
            // Only the peers given to `connect` are ever dialled.
            let _ = reply.send(Err(FetchError::NotConnected { peer }));
            return;
        };
        self.pending.insert(id, (peer, reply));
    }

    fn sweep(&mut self) {
        let penalised = self.shared.penalised.lock().map(|p| p.clone()).unwrap_or_default();
        for peer in penalised {
            if self.swarm.is_connected(&peer) {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn set_connected(&mut self) {
        let now: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        let n = now.len();
        if let Ok(mut c) = self.shared.connected.lock() {
            *c = now;
        }
        self.status.send_modify(|s| s.connected = n);
    }

    fn on_event(&mut self, event: SwarmEvent<ClientBehaviourEvent>) {
        use request_response::{Event, Message, OutboundFailure};
        match event {
            SwarmEvent::Behaviour(ClientBehaviourEvent::Snapshot(Event::Message {
                message: Message::Response { request_id, response },
                ..
            })) => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            SwarmEvent::Behaviour(ClientBehaviourEvent::Snapshot(Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            })) => {
                let err = match error {
                    OutboundFailure::Timeout => {
                        FetchError::Timeout { peer, timeout: self.request_timeout }
                    }
                    OutboundFailure::ConnectionClosed => FetchError::PeerGone { peer },
                    OutboundFailure::DialFailure => FetchError::NotConnected { peer },
                    OutboundFailure::UnsupportedProtocols => FetchError::Unsupported { peer },
                    OutboundFailure::Io(e) => {
                        match e.get_ref().and_then(|i| i.downcast_ref::<TooLarge>()) {
                            Some(t) => FetchError::TooLarge { peer, bytes: t.bytes, max: t.max },
                            None => FetchError::Io { peer, reason: e.to_string() },
                        }
                    }
                };
                tracing::debug!(%peer, "snapshot request failed: {err}");
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(err));
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if self.shared.is_penalised(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
                self.set_connected();
            }
            SwarmEvent::ConnectionClosed { .. } => self.set_connected(),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "snapshot dial failed: {error}");
                self.status.send_modify(|s| s.failed += 1);
            }
            SwarmEvent::Behaviour(ClientBehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(e),
                ..
            })) => {
                tracing::debug!(%peer, "ping to snapshot peer failed: {e}");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use request_response::Codec as _;

    /// Golden vectors: a changed byte here is a protocol change.
    #[test]
    fn request_encoding_is_fixed() {
        assert_eq!(SnapRequest::Latest.encode(), [0x01]);
        let chunk = SnapRequest::Chunk { height: 0x0102_0304_0506_0708, index: 0x0a0b_0c0d };
        assert_eq!(
            chunk.encode(),
            [0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d],
            "chunk request bytes"
        );
        assert_eq!(SnapRequest::Pending.encode(), [0x03]);
        let max = SnapRequest::Chunk { height: 0, index: u32::MAX };
        for r in [SnapRequest::Latest, chunk, max, SnapRequest::Pending] {
            assert_eq!(SnapRequest::decode(&r.encode()).unwrap(), r);
        }
        for bad in [&[][..], &[0x01, 0x00], &[0x02, 1, 2, 3], &[0x03, 0x00], &[0x04], &[0x02; 14]] {
            assert!(SnapRequest::decode(bad).is_err(), "{bad:?}");
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    fn write_response(r: SnapResponse) -> io::Result<Vec<u8>> {
        let mut out = futures::io::Cursor::new(Vec::new());
        block_on(Codec::new(MAX_SNAPSHOT_RESPONSE).write_response(&PROTOCOL, &mut out, r))?;
        Ok(out.into_inner())
    }

    fn read_response(max: usize, bytes: &[u8]) -> io::Result<SnapResponse> {
        let mut input = futures::io::Cursor::new(bytes.to_vec());
        block_on(Codec::new(max).read_response(&PROTOCOL, &mut input))
    }

    #[test]
    fn response_encoding_is_fixed_and_bounded() {
        assert_eq!(
            write_response(SnapResponse::Data(b"abc".to_vec())).unwrap(),
            [0, 0, 0, 0, 3, b'a', b'b', b'c']
        );
        assert_eq!(write_response(SnapResponse::NotFound).unwrap(), [1]);
        assert_eq!(write_response(SnapResponse::Busy).unwrap(), [2]);
        for r in [SnapResponse::Data(vec![7; 1000]), SnapResponse::NotFound, SnapResponse::Busy] {
            let bytes = write_response(r.clone()).unwrap();
            assert_eq!(read_response(MAX_SNAPSHOT_RESPONSE, &bytes).unwrap(), r);
        }
        // Announced length above the reader's limit: refused before the data is read.
        let err = read_response(2, &[0, 0, 0, 0, 3, 1, 2, 3]).unwrap_err();
        let t = err.get_ref().and_then(|e| e.downcast_ref::<TooLarge>()).unwrap();
        assert_eq!((t.bytes, t.max), (3, 2));
        // 4 GiB announced: refused at the protocol's limit.
        assert!(read_response(usize::MAX, &[0, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Short data, trailing bytes, unknown tags.
        assert!(read_response(100, &[0, 0, 0, 0, 3, 1, 2]).is_err());
        assert!(read_response(100, &[0, 0, 0, 0, 1, 1, 2]).is_err());
        assert!(read_response(100, &[1, 0]).is_err());
        assert!(read_response(100, &[9]).is_err());
        assert!(read_response(100, &[]).is_err());
        // Data above the protocol's limit is never written.
        assert!(write_response(SnapResponse::Data(vec![0; MAX_SNAPSHOT_RESPONSE + 1])).is_err());
    }

    #[test]
    fn requests_are_read_with_a_bound() {
        let read = |bytes: Vec<u8>| {
            let mut input = futures::io::Cursor::new(bytes);
            block_on(Codec::new(MAX_SNAPSHOT_RESPONSE).read_request(&PROTOCOL, &mut input))
        };
        assert_eq!(read(vec![1]).unwrap(), SnapRequest::Latest);
        let err = read(vec![1; 10_000]).unwrap_err();
        assert!(err.get_ref().and_then(|e| e.downcast_ref::<TooLarge>()).is_some(), "{err}");
        assert!(read(vec![1; MAX_SNAPSHOT_REQUEST]).is_err());
    }

    #[test]
    fn serving_is_bounded_per_peer_and_in_total() {
        let mut book = ServeBook::<u64>::default();
        let t = Instant::now();
        let ids: Vec<u64> = (0..32).collect();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!((0..SERVE_PER_PEER).all(|i| book.admit(a, ids[i], t)));
        assert!(!book.admit(a, ids[10], t), "a fifth request of one peer is refused");
        assert!((4..8).all(|i| book.admit(b, ids[i], t)));
        assert!(!book.admit(c, ids[11], t), "past the total, everyone is refused");
        assert_eq!(book.in_progress(), SERVE_TOTAL);
        book.finished(ids[0]);
        book.finished(ids[10]); // a Busy answer: not counted
        assert!(book.admit(c, ids[12], t));
        assert!(book.is_client(&a, t) && book.is_client(&c, t));
        // A peer stays a client for the grace after its last request, then not.
        let later = t + CLIENT_GRACE;
        for i in [1, 2, 3] {
            book.finished(ids[i]);
        }
        assert!(!book.is_client(&a, later));
        assert!(book.is_client(&b, later), "b still has requests in progress");
        book.forget(&c);
        book.finished(ids[12]);
        assert!(!book.is_client(&c, t));
    }
}
