//! `GET /status`: the consortium's status page, rendered on the server as plain HTML (no
//! script, no key), so that anyone can read it from any node, even with the web UI broken.

use std::fmt::Write;

use surplus_api::{ConsortiumStatus, IncidentKind};

/// HTML-escapes `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A key, shortened for people (its full hex in the title).
fn key(k: &surplus_ledger::PublicKey) -> String {
    let h = k.to_string();
    format!("<code title=\"{h}\">{}…</code>", &h[..12])
}

/// A duration for people.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        ms if ms >= 2 * 86_400_000 => format!("{} days", ms / 86_400_000),
        ms if ms >= 2 * 3_600_000 => format!("{} h", ms / 3_600_000),
        ms if ms >= 120_000 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1000),
    }
}

/// A time as UTC, `2026-12-05 14:05:09 UTC`.
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60, rem % 60)
}

fn percent(bps: Option<u32>) -> String {
    match bps {
        Some(b) => format!("{}.{:02} %", b / 100, b % 100),
        None => "no leases".into(),
    }
}

/// The page.
pub(crate) fn render(c: &ConsortiumStatus) -> String {
    let mut o = String::with_capacity(8192);
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Surplus status: {chain}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#111}}\
         table{{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}}th,td{{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc}}\
         .ok{{color:#0a5c2b}}.bad{{color:#9b1c1c}}.summary{{font-size:1.2rem;padding:.6rem;border:1px solid #999}}</style>\
         </head><body><header><h1>Surplus consortium status</h1>\
         <p>Chain <code>{chain}</code>, as node time {now} sees it. Reload it for the latest; \
         <a href=\"/api/v1/status/consortium\">the same as JSON</a>; <a href=\"/\">the market</a>.</p></header><main>",
        chain = esc(&c.chain_id),
        now = utc(c.now_ms),
    );
    let _ = write!(o, "<p class=\"summary\" id=\"summary\">{}</p>", esc(&c.summary));

    let up = c.validators.iter().filter(|v| v.up).count();
    let _ = write!(
        o,
        "<h2>Blocks and validators</h2><p>Block {} was made {} ago ({}). {}</p>\
         <p>{up} of {} validators took part in the last 20 blocks.</p>\
         <table><caption>Validators</caption><thead><tr><th scope=\"col\">Validator</th>\
         <th scope=\"col\">State</th><th scope=\"col\">Last block it signed or proposed</th></tr></thead><tbody>",
        c.height,
        duration(c.last_block_age_ms),
        utc(c.last_block_ms),
        match c.block_interval_ms {
            Some(ms) => format!("Blocks come every {} on average.", duration_fine(ms)),
            None => String::new(),
        },
        c.validators.len(),
    );
    for v in &c.validators {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            key(&v.key),
            if v.up { "ok" } else { "bad" },
            if v.up { "up" } else { "not seen" },
            v.last_seen_height.map_or("none recently".into(), |h| h.to_string())
        );
    }
    o.push_str("</tbody></table>");

    o.push_str("<h2>Providers' availability</h2>");
    match &c.supervision {
        None => {
            o.push_str("<p>Supervision is off in this consortium: nobody probes the leases.</p>")
        }
        Some(s) => {
            let _ = write!(
                o,
                "<p>Every validator probes the leases of the other providers. An interval of {} \
                 counts as down for a lease when more than {}.{:02} % of the other validators (and \
                 at least {}) report it down; its time is then paid back to the buyer.</p>",
                duration_fine(s.interval_ms),
                s.quorum_bps / 100,
                s.quorum_bps % 100,
                s.min_down
            );
        }
    }
    o.push_str(
        "<table><caption>Measured availability</caption><thead><tr><th scope=\"col\">Provider</th>\
         <th scope=\"col\">Live leases</th><th scope=\"col\">Last 24 hours</th>\
         <th scope=\"col\">Last 30 days</th></tr></thead><tbody>",
    );
    for p in &c.providers {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            key(&p.provider),
            p.live_leases,
            percent(p.day.availability_bps),
            percent(p.month.availability_bps)
        );
    }
    if c.providers.is_empty() {
        o.push_str("<tr><td colspan=\"4\">No provider has leased anything yet.</td></tr>");
    }
    o.push_str("</tbody></table>");

    o.push_str("<h2>Incidents</h2>");
    if c.incidents.is_empty() {
        o.push_str("<p id=\"no-incidents\">No outage and no maintenance in the last 30 days.</p>");
    } else {
        o.push_str(
            "<table id=\"incidents\"><caption>Incidents of the last 30 days, newest first</caption>\
             <thead><tr><th scope=\"col\">What</th><th scope=\"col\">Provider</th>\
             <th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">What happened</th></tr></thead><tbody>",
        );
        for i in &c.incidents {
            let _ = write!(
                o,
                "<tr class=\"incident {kind}\"><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                key(&i.provider),
                utc(i.start_ms),
                i.end_ms.map_or("going on".into(), utc),
                esc(&i.summary),
                kind = match i.kind {
                    IncidentKind::Outage => "outage",
                    IncidentKind::Maintenance => "maintenance",
                },
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</main></body></html>\n");
    o
}

/// A short duration, to the second below a minute.
fn duration_fine(ms: u64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        duration(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_text_is_escaped() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
        assert_eq!(esc("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
        assert_eq!(duration(90_000), "90 s");
        assert_eq!(duration(3 * 86_400_000), "3 days");
    }
}
