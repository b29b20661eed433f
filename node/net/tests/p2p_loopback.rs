//! The gossip network against bare libp2p peers on loopback: what a peer written outside this
//! project sees. A read-only watcher that subscribes to the checkpoints topic alone stays
//! connected (decision 0013); a peer subscribed to nothing is disconnected after the grace
//! period; messages gossipsub drops before the node's validator are counted by reason.
//!
//! No wall-clock assertions: every wait is for an event, bounded by a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use surplus_net::p2p::{self, Gossip, NetConfig, Published, Topic, Validator, Verdict};
use tokio::sync::mpsc;

const CHAIN: &str = "loopback-test";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// Accepts everything, remembering what it saw.
#[derive(Default)]
struct Seen(Mutex<Vec<Vec<u8>>>);

impl Seen {
    fn count(&self, data: &[u8]) -> usize {
        self.0.lock().unwrap().iter().filter(|d| d.as_slice() == data).count()
    }
    fn count_prefix(&self, prefix: &[u8]) -> usize {
        self.0.lock().unwrap().iter().filter(|d| d.starts_with(prefix)).count()
    }
}

impl Validator for Seen {
    fn validate(&self, _: Topic, data: &[u8], _: &PeerId) -> Verdict {
        self.0.lock().unwrap().push(data.to_vec());
        Verdict::Accept
    }
}

async fn node(grace: Duration) -> (Gossip, Arc<Seen>, Multiaddr) {
    let seen = Arc::new(Seen::default());
    let cfg = NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootstrap: vec![],
        mdns: false,
        max_connections: 8,
        max_message_bytes: 64 * 1024,
        peer_msgs_per_sec: 1_000,
        peer_burst: 1_000,
        subscription_grace: grace,
        name: String::new(),
    };
    let net = p2p::start(cfg, identity::Keypair::generate_ed25519(), CHAIN, seen.clone())
        .await
        .expect("start the node");
    let addr = net.listen_addrs()[0].clone().with(Protocol::P2p(net.local_peer_id()));
    (net, seen, addr)
}

/// A bare peer: gossipsub (configured by the test) and ping, nothing of this project.
#[derive(NetworkBehaviour)]
struct Bare {
    gossipsub: gossipsub::Behaviour,
    ping: ping::Behaviour,
}

/// What a bare peer reports to the test.
#[derive(Debug)]
enum Happened {
    Connected,
    Closed,
    Message(gossipsub::TopicHash, Vec<u8>),
}

type Job = Box<dyn FnOnce(&mut Swarm<Bare>) + Send>;

/// A bare peer running on its own task.
struct Peer {
    jobs: mpsc::UnboundedSender<Job>,
    events: mpsc::UnboundedReceiver<Happened>,
}

impl Peer {
    /// Starts a peer whose messages are anonymous (no `from`, `seqno` or signature: the node's
    /// own rules, decision 0035) or signed (as libp2p's default, which the node's no-sign checks
    /// refuse), and dials `node`.
    fn dial(node: &Multiaddr, signed: bool) -> Self {
        let key = identity::Keypair::generate_ed25519();
        let (auth, mode) = if signed {
            (MessageAuthenticity::Signed(key.clone()), ValidationMode::Strict)
        } else {
            (MessageAuthenticity::Anonymous, ValidationMode::Anonymous)
        };
        let mut config = gossipsub::ConfigBuilder::default();
        config.validation_mode(mode).heartbeat_interval(Duration::from_millis(500));
        if !signed {
            // Anonymous messages have no source and seqno, so the default ids would all be
            // equal. Here each message gets an id of its own: the same data published twice
            // is then two messages to this peer, and one id at the node (BLAKE3 of the data).
            static NEXT: AtomicU64 = AtomicU64::new(0);
            config.message_id_fn(|_: &gossipsub::Message| {
                MessageId::from(NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes().to_vec())
            });
        }
        let config = config.build().unwrap();
        let behaviour = Bare {
            gossipsub: gossipsub::Behaviour::new(auth, config).unwrap(),
            ping: ping::Behaviour::default(),
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.dial(node.clone()).expect("dial the node");
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<Job>();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    job = job_rx.recv() => match job {
                        Some(job) => job(&mut swarm),
                        None => break,
                    },
                    event = swarm.select_next_some() => {
                        let happened = match event {
                            SwarmEvent::ConnectionEstablished { .. } => Happened::Connected,
                            SwarmEvent::ConnectionClosed { .. } => Happened::Closed,
                            SwarmEvent::Behaviour(BareEvent::Gossipsub(
                                gossipsub::Event::Message { message, .. },
                            )) => Happened::Message(message.topic, message.data),
                            _ => continue,
                        };
                        let _ = tx.send(happened);
                    }
                }
            }
        });
        Self { jobs, events }
    }

    fn subscribe(&self, topic: Topic) {
        let topic = IdentTopic::new(topic.name(CHAIN));
        self.jobs
            .send(Box::new(move |s| {
                s.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
            }))
            .unwrap();
    }

    /// Publishes `data` on `topic`; false when gossipsub refused (no subscribed peer yet).
    async fn publish(&self, topic: Topic, data: &[u8]) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (topic, data) = (IdentTopic::new(topic.name(CHAIN)), data.to_vec());
        self.jobs
            .send(Box::new(move |s| {
                let _ = tx.send(s.behaviour_mut().gossipsub.publish(topic, data).is_ok());
            }))
            .unwrap();
        rx.await.unwrap()
    }

    /// Publishes `data` once, retrying until gossipsub knows the node's subscription.
    async fn publish_when_possible(&self, topic: Topic, data: &[u8]) {
        for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
            if self.publish(topic, data).await {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("the node's subscription never arrived");
    }

    /// Waits for the first event matching `want`, returning it and the events before it.
    async fn wait_for(&mut self, what: &str, want: impl Fn(&Happened) -> bool) -> Vec<Happened> {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if want(&e) => return before,
                Ok(Some(e)) => before.push(e),
                Ok(None) => panic!("the peer task stopped while waiting for {what}"),
                Err(_) => panic!("gave up waiting for {what}; saw {before:?}"),
            }
        }
    }

    /// The events that arrived so far, without waiting.
    fn drain(&mut self) -> Vec<Happened> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if done() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("gave up waiting for {what}");
}

/// Decision 0013. The watcher connects first, so by the time the node disconnects the peer that
/// subscribed to nothing (which it does only after the grace period), the watcher has been
/// connected for longer than the grace period too; it is still connected, and it receives a
/// checkpoint published after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoints_only_watcher_stays_connected_and_a_peer_without_subscriptions_does_not() {
    let (net, _, addr) = node(Duration::from_secs(2)).await;

    let mut watcher = Peer::dial(&addr, false);
    watcher.subscribe(Topic::Checkpoints);
    watcher.wait_for("the watcher's connection", |e| matches!(e, Happened::Connected)).await;

    let mut silent = Peer::dial(&addr, false);
    silent.wait_for("the silent peer's connection", |e| matches!(e, Happened::Connected)).await;
    silent.wait_for("the silent peer's disconnection", |e| matches!(e, Happened::Closed)).await;

    // The grace period is over for the watcher as well.
    wait_until("the node to count one peer disconnected for its subscriptions", || {
        net.stats().disconnects.no_subscription >= 1
    })
    .await;
    wait_until("the node to list the watcher alone", || net.peers() == 1).await;
    let so_far = watcher.drain();
    assert!(!so_far.iter().any(|e| matches!(e, Happened::Closed)), "{so_far:?}");

    let checkpoint = b"checkpoint published after the grace period".to_vec();
    let mut sent = false;
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if net.publish(Topic::Checkpoints, checkpoint.clone()).await.unwrap() == Published::Sent {
            sent = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(sent, "the node never knew the watcher's subscription");
    let topic = IdentTopic::new(Topic::Checkpoints.name(CHAIN)).hash();
    let before = watcher
        .wait_for(
            "the checkpoint at the watcher",
            |e| matches!(e, Happened::Message(t, d) if *t == topic && *d == checkpoint),
        )
        .await;
    assert!(!before.iter().any(|e| matches!(e, Happened::Closed)), "{before:?}");
    assert_eq!(net.peers(), 1);
    // Only the silent peer was disconnected by the rule.
    assert_eq!(net.stats().disconnects.no_subscription, 1);
    net.shutdown().await;
}

/// Duplicates, no-sign-check failures and graylisted RPCs, each dropped inside gossipsub, each
/// counted under its reason; none reaches the validator twice or at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_dropped_inside_gossipsub_are_counted_by_reason() {
    let (net, seen, addr) = node(p2p::SUBSCRIPTION_GRACE).await;
    let zero = net.stats().dropped;
    assert_eq!(zero, p2p::Dropped::default());

    // The same data twice from a peer following the node's rules: two gossipsub messages at
    // the peer, one message id at the node (BLAKE3 of the data), so the second is a duplicate.
    let mut anonymous = Peer::dial(&addr, false);
    anonymous.subscribe(Topic::Orders);
    anonymous
        .wait_for("the anonymous peer's connection", |e| matches!(e, Happened::Connected))
        .await;
    anonymous.publish_when_possible(Topic::Orders, b"twice").await;
    wait_until("the first copy validated", || seen.count(b"twice") == 1).await;
    assert!(anonymous.publish(Topic::Orders, b"twice").await);
    wait_until("the second copy counted as a duplicate", || net.stats().dropped.duplicate >= 1)
        .await;
    assert_eq!(seen.count(b"twice"), 1);

    // A copy of the node's own publication relayed back to it: a duplicate too, and not charged
    // to the relaying peer as a forgery (messages have no author, decision 0035).
    let mut sent = false;
    for _ in 0..(WAIT.as_millis() / POLL.as_millis()) {
        if net.publish(Topic::Orders, b"own".to_vec()).await.unwrap() == Published::Sent {
            sent = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(sent, "the node never knew the peer's subscription");
    anonymous
        .wait_for(
            "the node's own publication",
            |e| matches!(e, Happened::Message(_, d) if d.as_slice() == b"own"),
        )
        .await;
    let duplicates = net.stats().dropped.duplicate;
    assert!(anonymous.publish(Topic::Orders, b"own").await);
    wait_until("the relayed copy counted as a duplicate", || {
        net.stats().dropped.duplicate > duplicates
    })
    .await;
    assert_eq!(net.stats().dropped.invalid, 0, "{:?}", net.stats().dropped);
    assert_eq!(seen.count(b"own"), 0, "the node's own publication reached its validator");

    // Signed messages (libp2p's default) fail the no-sign checks: each costs the peer an
    // invalid delivery, and after three in quick succession its score is below the graylist
    // threshold, after which its RPCs are dropped unread. Bounded: at most 40 messages, 50 ms
    // apart.
    let mut signed = Peer::dial(&addr, true);
    signed.subscribe(Topic::Orders);
    signed.wait_for("the signed peer's connection", |e| matches!(e, Happened::Connected)).await;
    signed.publish_when_possible(Topic::Orders, b"signed-0").await;
    for i in 1..40 {
        let d = net.stats().dropped;
        if d.invalid >= 3 && d.graylisted >= 1 {
            break;
        }
        let _ = signed.publish(Topic::Orders, format!("signed-{i}").as_bytes()).await;
        tokio::time::sleep(POLL).await;
    }
    wait_until("signed messages counted as invalid, then graylisted", || {
        let d = net.stats().dropped;
        d.invalid >= 3 && d.graylisted >= 1
    })
    .await;
    assert_eq!(seen.count_prefix(b"signed-"), 0, "a signed message reached the validator");
    let d = net.stats().dropped;
    assert_eq!((d.self_origin, d.unsubscribed_topic), (0, 0), "{d:?}");
    // The validator's own counters are apart from these: it accepted one message.
    assert_eq!((net.stats().accepted, net.stats().rejected), (1, 0));
    let _ = (signed.drain(), anonymous.drain());
    net.shutdown().await;
}
