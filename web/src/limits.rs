//! Request limits: body size, and a token bucket per client IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::error::ApiError;

/// Clients tracked by the rate limiter at most; beyond it, idle ones are forgotten first.
pub const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Limits of the HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest JSON body accepted, bytes (413 beyond). The default admits any entry
    /// (`MAX_ENTRY_PAYLOAD` of 64 KiB, hex-encoded) with room to spare.
    pub max_body_bytes: usize,
    /// Sustained requests per second allowed from one client IP address; 0 disables the limit
    /// (benchmarks, or a node behind a proxy that limits).
    pub per_ip_per_sec: u32,
    /// Requests one client may send at once before the sustained rate applies.
    pub burst: u32,
    /// HTTP worker threads.
    pub workers: usize,
    /// `GET /api/v1/events` streams open at once at most (503 beyond).
    pub max_event_streams: usize,
    /// HTTP connections open at once at most; one more is shut down at accept. A node keeps it
    /// below its open-file limit.
    pub max_connections: usize,
    /// HTTP connections one client address may hold open at once (0: no limit; behind a proxy
    /// every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// A connection that sends no request for this long (a new one before its first request,
    /// a kept-alive one between requests) is closed.
    pub idle_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            per_ip_per_sec: 50,
            burst: 100,
            workers: 2,
            max_event_streams: 64,
            max_connections: 1024,
            max_connections_per_ip: 64,
            idle_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Checks the limits, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "max_body_bytes is {}, it must be at least 1024 (the default is {})",
                self.max_body_bytes,
                Limits::default().max_body_bytes
            ));
        }
        if self.per_ip_per_sec > 0 && self.burst == 0 {
            return Err("burst must be at least 1 when per_ip_per_sec is set".into());
        }
        if self.workers == 0 || self.workers > 256 {
            return Err(format!("workers is {}, it must be 1 to 256", self.workers));
        }
        if self.max_event_streams == 0 || self.max_event_streams > 100_000 {
            return Err(format!(
                "max_event_streams is {}, it must be 1 to 100000",
                self.max_event_streams
            ));
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(format!(
                "max_connections is {}, it must be 1 to 1000000",
                self.max_connections
            ));
        }
        if self.max_connections_per_ip > self.max_connections {
            return Err(format!(
                "max_connections_per_ip is {}, more than max_connections ({})",
                self.max_connections_per_ip, self.max_connections
            ));
        }
        let idle = self.idle_timeout.as_millis();
        if !(100..=3_600_000).contains(&idle) {
            return Err(format!("the idle timeout is {idle} ms, it must be 100 ms to one hour"));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per client IP address, bounded to [`MAX_TRACKED_CLIENTS`] clients.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    // `None`: a request without a peer address (in-process tests); they share one bucket.
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            rate: f64::from(limits.per_ip_per_sec),
            burst: f64::from(limits.burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client` at `now`; if none is left, the seconds until one is.
    pub(crate) fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            self.forget_idle(&mut buckets, now);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: self.burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    /// Takes `n` more tokens from `client`'s bucket at `now`, into debt if need be: a request
    /// that carries `n + 1` submissions (a batch, admitted by [`RateLimiter::check`] with the
    /// one token every request takes) costs what `n + 1` requests would, and the client's next
    /// request waits until the bucket holds a token again.
    pub(crate) fn charge(&self, client: Option<IpAddr>, n: usize, now: Instant) {
        if self.rate <= 0.0 || n == 0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            self.forget_idle(&mut buckets, now);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: self.burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst) - n as f64;
        bucket.last = now;
    }

    /// Drops clients whose bucket has refilled (forgetting them changes nothing); if that
    /// frees less than a tenth of the map, the tenth seen longest ago too, so that a stream of
    /// new addresses costs one scan per many clients, not one per request.
    fn forget_idle(&self, buckets: &mut HashMap<Option<IpAddr>, Bucket>, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
        let target = MAX_TRACKED_CLIENTS - MAX_TRACKED_CLIENTS / 10;
        if buckets.len() > target {
            let mut by_age: Vec<(Instant, Option<IpAddr>)> =
                buckets.iter().map(|(k, b)| (b.last, *k)).collect();
            let excess = buckets.len() - target;
            by_age.select_nth_unstable_by_key(excess - 1, |(last, _)| *last);
            for (_, k) in &by_age[..excess] {
                buckets.remove(k);
            }
        }
    }
}

/// Middleware: refuses a request with 429 and `Retry-After` when its client's bucket is empty.
/// The client is the TCP peer's address (a forwarded-for header could be forged by anyone).
pub(crate) async fn rate_limit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if let Some(limiter) = req.app_data::<web::Data<RateLimiter>>() {
        let client = req.peer_addr().map(|a| a.ip());
        if let Err(retry_after_secs) = limiter.check(client, Instant::now()) {
            let response = ApiError::RateLimited { retry_after_secs }.error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_the_rate_and_caps_at_the_burst() {
        let l = RateLimiter::new(&Limits { per_ip_per_sec: 2, burst: 3, ..Limits::default() });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip, t0), Ok(()));
        }
        assert_eq!(l.check(ip, t0), Err(1));
        // Another client has its own bucket.
        assert_eq!(l.check(Some(IpAddr::from([10, 0, 0, 2])), t0), Ok(()));
        // Half a second at 2/s gives one token back.
        assert_eq!(l.check(ip, t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check(ip, t0 + Duration::from_millis(500)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(l.check(ip, later), Ok(()));
        }
        assert!(l.check(ip, later).is_err());
    }

    #[test]
    fn a_charge_puts_the_bucket_in_debt_until_it_refills() {
        let l = RateLimiter::new(&Limits { per_ip_per_sec: 2, burst: 4, ..Limits::default() });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let t0 = Instant::now();
        // A batch of 10: one token at the door, nine charged after: 4 - 10 = -6.
        assert_eq!(l.check(ip, t0), Ok(()));
        l.charge(ip, 9, t0);
        assert_eq!(l.check(ip, t0), Err(4), "(1 - (-6)) / 2 = 3.5 s, rounded up");
        assert_eq!(l.check(ip, t0 + Duration::from_secs(3)), Err(1), "-6 + 6 = 0 tokens");
        assert_eq!(l.check(ip, t0 + Duration::from_millis(3500)), Ok(()));
        // Off, or nothing to charge: no change.
        l.charge(ip, 0, t0 + Duration::from_millis(3500));
        let off = RateLimiter::new(&Limits { per_ip_per_sec: 0, ..Limits::default() });
        off.charge(ip, 1000, t0);
        assert_eq!(off.check(ip, t0), Ok(()));
    }

    #[test]
    fn zero_rate_disables_the_limit_and_the_map_stays_bounded() {
        let off = RateLimiter::new(&Limits { per_ip_per_sec: 0, ..Limits::default() });
        let t0 = Instant::now();
        assert!((0..1000).all(|_| off.check(None, t0).is_ok()));

        let l = RateLimiter::new(&Limits { per_ip_per_sec: 1, burst: 1, ..Limits::default() });
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            let _ = l.check(Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_TRACKED_CLIENTS);
    }

    #[test]
    fn a_full_map_forgets_the_oldest_tenth_at_once() {
        let l = RateLimiter::new(&Limits { per_ip_per_sec: 1, burst: 1, ..Limits::default() });
        let t0 = Instant::now();
        let ip = |i: u32| Some(IpAddr::from(i.to_be_bytes()));
        for i in 0..MAX_TRACKED_CLIENTS as u32 {
            let at = t0 + std::time::Duration::from_micros(u64::from(i));
            assert_eq!(l.check(ip(i), at), Ok(()));
        }
        // Every bucket is empty (burst 1, spent): none is idle, so the oldest tenth goes.
        let at = t0 + std::time::Duration::from_millis(20);
        assert_eq!(l.check(ip(u32::MAX), at), Ok(()));
        let buckets = l.buckets.lock().unwrap();
        assert_eq!(buckets.len(), MAX_TRACKED_CLIENTS - MAX_TRACKED_CLIENTS / 10 + 1);
        assert!(!buckets.contains_key(&ip(0)));
        assert!(buckets.contains_key(&ip(MAX_TRACKED_CLIENTS as u32 - 1)));
        drop(buckets);
        // The newest clients are still limited.
        assert!(l.check(ip(MAX_TRACKED_CLIENTS as u32 - 1), at).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        assert!(Limits::default().validate().is_ok());
        let e = Limits { max_body_bytes: 10, ..Limits::default() }.validate().unwrap_err();
        assert!(e.contains("max_body_bytes"));
        let e = Limits { workers: 0, ..Limits::default() }.validate().unwrap_err();
        assert!(e.contains("workers"));
    }
}
