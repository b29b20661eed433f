//! A hostile HTTP client against a real node process: malformed JSON, huge bodies, wrong
//! signatures, another account's credential, a client that never finishes its request. Each gets
//! a clear 4xx or is cut off, and nothing in the state changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use surplus_api::{AccountView, CredentialRequest, GatewayRequest, LeaseList};
use surplus_client::Client;
use surplus_ledger::{Entry, EntryKind, Signature};
use surplus_market::{Order, SignedOrder};
use surplus_tests::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A raw HTTP/1.1 exchange: sends `request`, reads until the server closes or 30 s pass.
fn raw(addr: &str, request: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read a huge body: a failed write is fine.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    (status, text)
}

fn post_raw(addr: &str, path: &str, ctype: &str, body: &[u8]) -> (Option<u16>, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(addr, &req)
}

/// The JSON error of a raw answer.
fn error_code(text: &str) -> Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<Value>(body).map(|v| v["error"]["code"].clone()).unwrap_or(Value::Null)
}

/// What hostile requests must not change: every account and every lease.
fn snapshot(api: &Client, keys: &[surplus_ledger::PublicKey]) -> (Vec<AccountView>, LeaseList) {
    let accounts = keys.iter().map(|k| api.account(k).unwrap()).collect();
    (accounts, api.leases(None, Some(1000)).unwrap())
}

#[test]
fn hostile_requests_get_clear_4xx_or_are_cut_off_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 4, free_base(40), 200, 1000);
    let nodes = net.start_all();
    let apis: Vec<Client> = nodes.iter().map(|n| n.api.clone()).collect();
    let chain_id = net.chain_id().to_owned();
    let (buyer, other) = (net.buyer(0), net.buyer(1));
    let addr = apis[1].base().trim_start_matches("http://").to_owned();

    // A real lease of the buyer, for the credential attempts.
    let (market, reserve) = first_pool(&net.data_dir(0));
    wait_for_offer(&apis[0], &market, &net.node_key(0));
    let bid = one_slot_bid(&market, reserve * 2, 1, 600_000);
    let (entry, _) = SignedOrder::sign(&chain_id, Order::Bid(bid), &buyer);
    assert_eq!(apis[0].submit(&entry).unwrap(), entry.id());
    let lease = wait_for("the buyer's lease, granted", 2 * MINUTE, || {
        let l = apis[0].leases(Some(&buyer.public()), None).ok()?;
        let lease = l.leases.first()?;
        assert_eq!(lease.fill.buyer, buyer.public(), "another account's lease");
        lease.grant.is_some().then_some(lease.id)
    });

    // Quiet chain: what the requests below must leave as it is, once every node has the lease
    // granted and its probe declared (the provider's own entries, which follow the grant).
    let keys = [buyer.public(), other.public()];
    for api in &apis {
        wait_for("the lease granted and probed on every node", 2 * MINUTE, || {
            let l = api.leases(Some(&buyer.public()), None).ok()?;
            let lease = l.leases.iter().find(|l| l.id == lease)?;
            (lease.grant.is_some() && lease.probe.is_some()).then_some(())
        });
    }
    let before: Vec<_> = apis.iter().map(|api| snapshot(api, &keys)).collect();

    // Malformed JSON, the wrong content type, unknown fields, bad hex, a truncated entry.
    let entries = "/api/v1/entries";
    let cases: [(&str, &[u8], u16, &str); 5] = [
        ("application/json", b"{\"entry\": ", 400, "bad_json"),
        ("text/plain", b"{\"entry\": \"00\"}", 415, "unsupported_media_type"),
        ("application/json", b"{\"entry\": \"00\", \"x\": 1}", 400, "bad_json"),
        ("application/json", b"{\"entry\": \"zz\"}", 400, "bad_hex"),
        ("application/json", b"{\"entry\": \"0010\"}", 400, "malformed_entry"),
    ];
    for (ctype, body, status, code) in cases {
        let (s, text) = post_raw(&addr, entries, ctype, body);
        assert_eq!(s, Some(status), "{text}");
        assert_eq!(error_code(&text), code, "{text}");
    }

    // A huge body is refused without being read whole (413, or the connection is cut).
    let huge = vec![b'a'; 8 << 20];
    let (s, text) = post_raw(&addr, entries, "application/json", &huge);
    assert!(s.is_none() || s == Some(413), "{text}");

    // A bid whose signature is wrong, and one signed by someone else than its author.
    let mut forged = entry.clone();
    if let surplus_ledger::Auth::Signed { signature, .. } = &mut forged.auth {
        signature.0[0] ^= 1;
    }
    let (s, code) = refusal("a forged signature", apis[1].submit(&forged));
    assert_eq!(s, 400, "{code}");
    let mut stolen = Entry::signed(&chain_id, EntryKind::ORDER, entry.payload.clone(), &other);
    if let (
        surplus_ledger::Auth::Signed { author, .. },
        surplus_ledger::Auth::Signed { author: real, .. },
    ) = (&mut stolen.auth, &entry.auth)
    {
        *author = *real;
    }
    let (s, code) = refusal("a stolen author", apis[1].submit(&stolen));
    assert_eq!(s, 400, "{code}");

    // Another account's credential: a challenge signed by the wrong key, a garbage signature.
    let (s, code) = refusal("another key's credential", apis[0].fetch_credential(&lease, &other));
    assert_eq!(s, 403, "{code}");
    let c = apis[0].challenge(&lease).unwrap();
    assert_eq!((c.chain_id.as_str(), c.lease), (chain_id.as_str(), lease));
    let bad =
        CredentialRequest { challenge: c.challenge, signature: Signature([7; 64]).to_string() };
    let (s, code) = refusal("a garbage signature", apis[0].credential(&lease, &bad));
    assert_eq!(s, 403, "{code}");
    let not_a_token =
        GatewayRequest { token: "not-a-token".into(), operation: "read".into(), lease: None };
    let (s, code) = refusal("not a token", apis[0].gateway(&not_a_token));
    assert!((400..500).contains(&s), "{s} {code}");

    // A client that never finishes its request head is cut off (with 408 or a close).
    let started = Instant::now();
    let (s, text) =
        raw(&addr, format!("GET /api/v1/status HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    assert!(s.is_none() || s == Some(408), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "the slow client was never cut off");

    // Nothing changed, on any node, and the node still answers.
    for (api, before) in apis.iter().zip(&before) {
        assert_eq!(&snapshot(api, &keys), before);
    }
    assert_eq!(apis[1].status().unwrap().chain_id, chain_id);
    drop(nodes);
}

/// An account's resting orders come in pages (`GET /api/v1/orders?account=&limit=&after=`):
/// 150 resting bids of one buyer are listed 100 then 50, oldest first, each once, and a bad
/// limit or cursor is refused. The list used to be one unbounded answer (12,000 orders gave
/// 4 MB, and eight clients asking for it slowed every other request).
#[test]
fn an_accounts_resting_orders_are_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 1000);
    let nodes = net.start_all();
    let api = nodes[0].api.clone();
    let buyer = net.buyer(2);
    let (market, reserve) = first_pool(&net.data_dir(0));
    assert!(reserve > 1, "a bid at 1 unit must rest under the reserve");
    const BIDS: u64 = 150;
    for nonce in 0..BIDS {
        let bid = one_slot_bid(&market, 1, 10_000 + nonce, 1_800_000);
        let (entry, _) = SignedOrder::sign(net.chain_id(), Order::Bid(bid), &buyer);
        wait_for("the bid to be accepted", MINUTE, || match api.submit(&entry) {
            Ok(id) => {
                assert_eq!(id, entry.id());
                Some(())
            }
            Err(surplus_client::Error::Refused { status: 429, .. }) => None,
            Err(e) => panic!("bid {nonce} refused: {e}"),
        });
    }
    let key = buyer.public();
    wait_for("every bid to rest in the book", 2 * MINUTE, || {
        (api.orders(&key).ok()?.len() as u64 == BIDS).then_some(())
    });

    let first = api.orders_page(&key, None, None).unwrap();
    assert_eq!((first.orders.len(), first.truncated), (100, true));
    let next = first.next.clone().expect("a truncated page says where the next begins");
    let second = api.orders_page(&key, None, Some(&next)).unwrap();
    assert_eq!((second.orders.len(), second.truncated, second.next.clone()), (50, false, None));
    let all: Vec<_> = first.orders.iter().chain(&second.orders).collect();
    let places: Vec<(u64, [u8; 32])> = all.iter().map(|o| (o.order.height, o.order.id)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "not oldest first, each once: {places:?}");
    assert!(all.iter().all(|o| o.order.author == key && o.side == "bid"));
    let small = api.orders_page(&key, Some(7), None).unwrap();
    assert_eq!(small.orders, first.orders[..7].to_vec());

    for (what, r) in [
        ("limit 0", api.orders_page(&key, Some(0), None)),
        ("limit 1001", api.orders_page(&key, Some(1001), None)),
    ] {
        assert_eq!(refusal(what, r), (400, "bad_limit".to_owned()), "{what}");
    }
    for bad in ["12", "x-y", "5-abcd"] {
        let r = api.orders_page(&key, None, Some(bad));
        assert_eq!(refusal(bad, r), (400, "bad_query".to_owned()), "{bad}");
    }
}

/// Opens `GET /api/v1/events` on `api` from source address `from` and reads the status line.
fn open_stream(api: std::net::SocketAddr, from: std::net::Ipv4Addr) -> (TcpStream, u16) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&std::net::SocketAddr::new(from.into(), 0).into()).unwrap();
    socket.connect_timeout(&api.into(), Duration::from_secs(10)).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") && s.read_exact(&mut byte).is_ok() {
        line.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    let status = status.unwrap_or_else(|| panic!("no status line from the events route: {text:?}"));
    if status == 200 {
        // Read through the stream's first frame, so that nothing unread is left when the
        // client closes: the close is then a plain FIN, which the server learns of only when it
        // next writes (unread data would make it a reset the server sees at once).
        let mut seen = Vec::new();
        while !seen.ends_with(b"connected\n\n\r\n") && s.read_exact(&mut byte).is_ok() {
            seen.push(byte[0]);
        }
    }
    (s, status)
}

/// The node's `surplus_event_streams_open`.
fn streams_open(addr: &str) -> Option<u64> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let (status, text) = raw(addr, request.as_bytes());
    (status == Some(200)).then_some(())?;
    text.lines().find_map(|l| l.strip_prefix("surplus_event_streams_open ")?.trim().parse().ok())
}

/// Event streams against many client addresses: 16 addresses opening 4 streams each cannot take
/// the last quarter of the slots, so a client with none still gets one (before, the 64 asks
/// took every slot and honest clients got 503); and the slots of streams whose clients closed
/// them are free again within seconds. A clean close (FIN) is seen at once, with or without
/// the once-a-second comment line; that line bounds the case where only a write finds the
/// close, which took 15–27 s with the old 15 s keep-alive.
#[test]
fn event_streams_keep_a_share_for_new_clients_and_free_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 1000);
    let nodes = net.start_all();
    let addr = nodes[0].api.base().trim_start_matches("http://").to_owned();
    let api: std::net::SocketAddr = addr.parse().unwrap();

    let mut held = Vec::new();
    let mut refused = 0;
    for a in 0..16u8 {
        for _ in 0..4 {
            let (s, status) = open_stream(api, std::net::Ipv4Addr::new(127, 0, 1, a + 1));
            match status {
                200 => held.push(s),
                503 => refused += 1,
                other => panic!("stream from 127.0.1.{}: status {other}", a + 1),
            }
        }
    }
    eprintln!("16 addresses × 4 asks: {} streams open, {refused} refused", held.len());
    assert!(refused > 0, "the 16 addresses took all {} streams they asked for", held.len());
    wait_for("the node to count the streams", MINUTE, || {
        (streams_open(&addr)? == held.len() as u64).then_some(())
    });
    // A client with no stream still gets one.
    let (honest, status) = open_stream(api, std::net::Ipv4Addr::new(127, 0, 2, 1));
    assert_eq!(status, 200, "a new client was refused with {} streams open", held.len());

    // The 16 clients leave: their slots are free again within seconds.
    drop(held);
    let freed =
        wait_for_or_none(Duration::from_secs(10), || (streams_open(&addr)? == 1).then_some(()));
    assert!(
        freed.is_some(),
        "slots still taken 10 s after their clients left: {:?}",
        streams_open(&addr)
    );
    drop(honest);
}

/// A connection to `api` from source address `from`, within 5 s.
fn connect_from(api: std::net::SocketAddr, from: std::net::Ipv4Addr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::new(from.into(), 0).into())?;
    socket.connect_timeout(&api.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// `GET path` from source address `from`: the status and the body, or why there is none
/// within 5 s.
fn get_from(
    api: std::net::SocketAddr,
    from: std::net::Ipv4Addr,
    path: &str,
) -> Result<(u16, String), String> {
    let mut s = connect_from(api, from).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    status.map(|s| (s, body)).ok_or_else(|| format!("no status line: {text:?}"))
}

/// Whether a connection the client holds was closed or reset by the server.
fn closed(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    s.set_nonblocking(true).ok();
    let gone = match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).ok();
    gone
}

/// Issue 21, item 3: with the usual open-file limit of 1,024, 1,200 idle connections from one
/// client made a node's API time out for everyone for about 30 s (accept errors, provisioning
/// hooks failing with "Too many open files"). Now a node serves at most what its reserve of
/// descriptors leaves to HTTP, at most 64 connections from one address (more are reset at
/// accept), and closes idle ones; a client that holds 2,000 idle connections, opening new
/// ones as the node closes them, does not keep another client from being answered.
#[test]
fn idle_connections_from_one_client_cannot_block_the_api() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const IDLE: usize = 2_000;
    // The test itself holds the 2,000 sockets.
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.unwrap_or(1 << 20).min(1 << 16);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: lim.maximum });
    let files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        files >= IDLE as u64 + 200,
        "the test needs {} open files, it may have {files}",
        IDLE + 200
    );

    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 1000);
    let n = &net.file["nodes"][0];
    let (dir, base) = (Path::new(n["data_dir"].as_str().unwrap()), n["api"].as_str().unwrap());
    let mut node = NodeProc::start_with_file_limit(dir, base, 1024);
    node.wait_up();
    let addr = base.trim_start_matches("http://").to_owned();
    let api: std::net::SocketAddr = addr.parse().unwrap();
    let (attacker, honest) =
        (std::net::Ipv4Addr::new(127, 0, 0, 1), std::net::Ipv4Addr::new(127, 0, 3, 1));
    let metric = |name: &str| -> Option<u64> {
        let (_, body) = get_from(api, honest, "/metrics").ok()?;
        let key = format!("{name} ");
        body.lines().find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
    };
    let refused_before = metric("surplus_http_connections_refused_total").unwrap();

    // 2,000 idle connections from one address, reopened as the node closes them (at most
    // 20,000 connects in all), while another address asks for the status four times a second
    // for 15 s.
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE);
    let mut connects = 0usize;
    while idle.len() < IDLE && connects < 4 * IDLE {
        connects += 1;
        if let Ok(s) = connect_from(api, attacker) {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), IDLE, "the idle client could not open its connections");
    let started = Instant::now();
    let (mut answered, mut failed, mut slowest) = (0, Vec::new(), Duration::ZERO);
    let mut most_open = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let asked = Instant::now();
        match get_from(api, honest, "/api/v1/status") {
            Ok((200, _)) => answered += 1,
            other => failed.push(format!("{:.1} s: {other:?}", started.elapsed().as_secs_f64())),
        }
        slowest = slowest.max(asked.elapsed());
        most_open = most_open.max(metric("surplus_http_connections_open").unwrap_or(0));
        for s in idle.iter_mut() {
            if connects < 10 * IDLE && closed(s) {
                connects += 1;
                if let Ok(fresh) = connect_from(api, attacker) {
                    *s = fresh;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let refused = metric("surplus_http_connections_refused_total").unwrap() - refused_before;
    eprintln!(
        "{IDLE} idle connections ({connects} connects): {answered} status requests answered, \
         {} failed, slowest {slowest:?}; the node reset {refused} connections at accept and \
         held at most {most_open} open",
        failed.len()
    );
    assert!(failed.is_empty(), "honest requests failed: {failed:?}");
    assert!(answered >= 20, "only {answered} honest requests were made");
    assert!(refused >= (IDLE - 64) as u64, "the node reset only {refused} connections");
    assert!(most_open <= 512, "{most_open} open: more than the descriptors leave for HTTP");
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
    let plain = without_colours(&log);
    let line = plain.lines().find(|l| l.contains("descriptors:")).unwrap_or_default();
    assert!(
        line.contains("open_file_limit=1024") && line.contains("http_connections=512"),
        "the budget is not logged: {line:?}\n{}",
        node.log_tail()
    );
    assert!(!plain.contains("Too many open files"), "the node ran out:\n{}", node.log_tail());
    drop(idle);
    node.stop();
}

/// Issue 21, item 8: `GET /api/v1/operator` showed reserve prices, inventory, earnings and peer
/// addresses to anyone. Now it answers only a request carrying the node's operator token
/// (`DIR/operator.token`, made at the first start, readable by the owner only); `/metrics`
/// stays open, and moves to an address of its own with `[http] metrics_listen`.
#[test]
fn operator_data_needs_the_operator_token_and_metrics_can_move() {
    let tmp = tempfile::tempdir().unwrap();
    let net = Devnet::init_with(tmp.path(), 1, free_base(10), 200, 1000);
    let mut nodes = net.start_all();
    let node = &nodes[0];
    let addr = node.api.base().trim_start_matches("http://").to_owned();
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
        raw(&addr, req.as_bytes())
    };

    // Closed to anyone without the token, or with a wrong one; no operator data in the answer.
    let (status, text) = get("/api/v1/operator", None);
    assert_eq!((status, error_code(&text)), (Some(401), "operator_only".into()), "{text}");
    assert!(!text.contains("earnings") && !text.contains("inventory"), "{text}");
    let (status, _) = get("/api/v1/operator", Some(&"ab".repeat(32)));
    assert_eq!(status, Some(401));
    let token_file = node.dir.join("operator.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the token file is readable by its owner only");
    }
    let token = std::fs::read_to_string(&token_file).unwrap();
    let (status, text) = get("/api/v1/operator", Some(token.trim()));
    assert_eq!(status, Some(200), "{text}");
    assert!(text.contains("\"earnings\"") && text.contains("\"peers\""), "{text}");
    let view = node.operator_api().operator().expect("the client with the token");
    assert_eq!(view.status.public_key, node.api.status().unwrap().public_key);
    let (status, _) = get("/metrics", None);
    assert_eq!(status, Some(200), "/metrics stays open by default");

    // /metrics on an address of its own: only there, and nothing else there.
    let metrics_port = free_base(1);
    let config = node.dir.join("config.toml");
    set_config(&config, "metrics_listen", &format!("\"127.0.0.1:{metrics_port}\""));
    let (dir, base) = (node.dir.clone(), node.api.base().to_owned());
    nodes[0].stop();
    nodes[0] = NodeProc::start(&dir, &base);
    nodes[0].wait_up();
    let (status, text) = get("/metrics", None);
    assert_eq!((status, error_code(&text)), (Some(404), "not_found".into()), "{text}");
    assert_eq!(get("/api/v1/status", None).0, Some(200));
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let on = |path: &str| {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {metrics_addr}\r\nConnection: close\r\n\r\n");
        raw(&metrics_addr, req.as_bytes())
    };
    let (status, text) = on("/metrics");
    assert_eq!(status, Some(200), "{text}");
    assert!(text.contains("surplus_height "), "{text}");
    assert_eq!(on("/api/v1/status").0, Some(404), "the metrics address serves /metrics only");
    nodes[0].stop();
}

/// A one-node devnet whose blocks take one entry each, two a second
/// (`consensus.max_block_entries = 1`, a fixed 500 ms interval), with the `[mempool]` shedding
/// keys given, its own entries already in blocks, and a funded buyer's one-slot bids in a market
/// with an offer (`bid(nonce)`).
struct OneEntryBlocks {
    _tmp: tempfile::TempDir,
    net: Devnet,
    _nodes: Vec<NodeProc>,
    api: Client,
    addr: String,
    buyer: surplus_ledger::SecretKey,
    market: surplus_market::Market,
}

impl OneEntryBlocks {
    fn start(shed_after_ms: &str, shed_beyond_blocks: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let net = Devnet::init_with(tmp.path(), 1, free_base(10), 500, 1000);
        let config = net.data_dir(0).join("config.toml");
        set_config(&config, "max_block_entries", "1");
        set_config(&config, "shed_after_ms", shed_after_ms);
        set_config(&config, "shed_beyond_blocks", shed_beyond_blocks);
        // A fixed interval: with a full block waiting, the batch would otherwise close at its
        // lower bound.
        set_config(&config, "min_batch_interval_ms", "500");
        let nodes = net.start_all();
        let api = nodes[0].api.clone();
        let addr = api.base().trim_start_matches("http://").to_owned();
        let buyer = net.buyer(2);
        let (market, _) = first_pool(&net.data_dir(0));
        wait_for_offer(&api, &market, &net.node_key(0));
        wait_for("the node's own entries in blocks", 2 * MINUTE, || {
            (api.status().ok()?.mempool == 0).then_some(())
        });
        Self { _tmp: tmp, net, _nodes: nodes, api, addr, buyer, market }
    }

    fn bid(&self, nonce: u64) -> Entry {
        let order = Order::Bid(one_slot_bid(&self.market, 1, nonce, 1_800_000));
        SignedOrder::sign(self.net.chain_id(), order, &self.buyer).0
    }
}

/// A node sheds load before its queues fill: while the oldest entry a block could take has
/// waited longer than `[mempool] shed_after_ms`, an API submission gets 503 `overloaded` with
/// `Retry-After` and costs nothing; the shed count is a metric; the client sends again after
/// the wait and gets in once blocks have caught up. Blocks of one entry each, two a second,
/// make the backlog here (`consensus.max_block_entries = 1`).
#[test]
fn a_node_behind_its_blocks_sheds_submissions_with_retry_after_and_recovers() {
    // The age rule alone (the depth rule has its own test below).
    let node = OneEntryBlocks::start("1000", "0");
    let (api, addr, buyer, bid) = (&node.api, &node.addr, &node.buyer, |n| node.bid(n));

    // Eight bids at once: taken (nothing waits long yet), then one a block.
    const BIDS: u64 = 8;
    for nonce in 0..BIDS {
        let entry = bid(nonce);
        assert_eq!(api.clone().with_retries(0).submit(&entry).unwrap(), entry.id());
    }
    // Two blocks a second take one each: after 1.5 s, three or four at most, and the oldest
    // left has waited more than a second (and two intervals): the next submission is shed,
    // before any work.
    std::thread::sleep(Duration::from_millis(1_500));
    let shed_entry = bid(100);
    let body = format!("{{\"entry\":\"{}\"}}", hex::encode(shed_entry.encode()));
    let (status, answer) = post_raw(addr, "/api/v1/entries", "application/json", body.as_bytes());
    assert_eq!(status, Some(503), "{answer}");
    assert_eq!(error_code(&answer), "overloaded", "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(answer.contains("sheds load"), "{answer}");
    let held = api.submission(&shed_entry.id());
    assert!(matches!(&held, Err(e) if e.status() == Some(404)), "a shed entry is held: {held:?}");
    let metrics = api.metrics().unwrap();
    let shed_total = metrics
        .lines()
        .find_map(|l| l.strip_prefix("surplus_submissions_shed_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("surplus_submissions_shed_total");
    assert!(shed_total >= 1, "{metrics}");

    // The client waits and sends again (a few times, backing off) until blocks caught up.
    let late = bid(1_000);
    assert_eq!(api.submit(&late).unwrap(), late.id());
    wait_for("every bid taken in a block", 2 * MINUTE, || {
        (api.orders(&buyer.public()).ok()?.len() as u64 == BIDS + 1).then_some(())
    });
}

/// A node also sheds by the depth of its backlog: while more entries wait for a block than
/// `[mempool] shed_beyond_blocks` of its next blocks take, a new one would miss them, and an
/// API submission gets 503 `overloaded` with `Retry-After` at once, before any entry is old.
/// Blocks of one entry each, two a second (`consensus.max_block_entries = 1`), and two blocks:
/// the third bid waiting is refused; what was taken commits, and the client's retry gets in.
#[test]
fn a_node_sheds_what_its_next_blocks_cannot_take() {
    let node = OneEntryBlocks::start("0", "2");
    let (api, addr, buyer, bid) = (&node.api, &node.addr, &node.buyer, |n| node.bid(n));

    // Bids as fast as one client sends them: a block takes one every half second, so the
    // backlog passes two within a few and the next is refused.
    let mut taken = 0u64;
    let answer = loop {
        assert!(taken < 20, "twenty bids taken in a row: nothing shed by depth");
        let entry = bid(taken);
        let body = format!("{{\"entry\":\"{}\"}}", hex::encode(entry.encode()));
        let (status, answer) =
            post_raw(addr, "/api/v1/entries", "application/json", body.as_bytes());
        if status == Some(503) {
            let held = api.submission(&entry.id());
            assert!(matches!(&held, Err(e) if e.status() == Some(404)), "held: {held:?}");
            break answer;
        }
        assert!(matches!(status, Some(200..=202)), "{status:?} {answer}");
        taken += 1;
    };
    assert!(taken >= 2, "two blocks take two: {answer}");
    assert_eq!(error_code(&answer), "overloaded", "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(answer.contains("more than its next 2 blocks take (2)"), "{answer}");

    // What was taken commits; the client backs off and its retry gets in.
    let late = bid(1_000);
    assert_eq!(api.submit(&late).unwrap(), late.id());
    wait_for("every bid taken in a block", 2 * MINUTE, || {
        (api.orders(&buyer.public()).ok()?.len() as u64 == taken + 1).then_some(())
    });
}
