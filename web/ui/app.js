// The Surplus web UI: one page, hash routes (#/buyer, #/operator, #/auditor, #/auditor/block/H,
// #/auditor/verify/LEASE). Everything it loads comes from this node; the private key stays in
// this browser (keys.js) and signs orders, cancels and credential challenges locally.

import { depthChart, lineChart } from "./charts.js";
import {
  challengeBytes, decodeEntry, decodeOrder, encodeCancel, encodeEntry, encodeLeaseTransition, encodeOrder, formatCredits,
  fromHex, headerHash, KIND, kindName, parseCredits, PRECOMMIT, signingBytes, toHex, UNITS_PER_CREDIT, voteBytes,
} from "./encoding.js";
import { KeyPair, STORAGE_KEY } from "./keys.js";
import { verifyZip215 } from "./ed25519.js";
import { quorumOf, verifyBundle } from "./verify.js";
import { verifyStateProof } from "./stateproof.js";
import { openSealed } from "./sealed.js";

const HOUR_MS = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Builds an element: h("button", {onclick, "data-testid": "x"}, "text", child, ...). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  // A <pre> scrolls (style.css): keyboard users must be able to reach it to scroll it.
  if (tag === "pre" && !("tabindex" in (attrs ?? {}))) e.tabIndex = 0;
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/** A hex value shown short, full in its title and selectable. */
const short = (hex, n = 10) =>
  hex ? h("code", { title: hex, class: "hex" }, hex.length > 2 * n ? `${hex.slice(0, n)}…${hex.slice(-4)}` : hex) : "—";

const credits = (units) => (units === null || units === undefined ? "—" : `${formatCredits(units)} cr`);
const time = (ms) => (ms ? new Date(Number(ms)).toLocaleString() : "—");
const clock = (ms) => new Date(Number(ms)).toLocaleTimeString();

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A JSON request to this node's API; throws ApiError with the API's message. */
/** A node's message with its amounts in units said in credits, as the rest of the page does. */
const inCredits = (text) =>
  String(text).replace(/\b(\d{1,20}) units\b/g, (_, u) => `${formatCredits(BigInt(u))} credits`);

/** Providers' maintenance windows of a market, in a line ("" without any). */
function maintenanceText(windows) {
  if (!windows?.length) return "";
  return windows.map((w) => `${w.pool}: from ${time(w.start_ms)}${Number(w.until_ms) ? ` to ${time(w.until_ms)}` : ""} (${w.reason})`).join("; ");
}

/** A lease's status in words, with its provider's notice if it gave one. */
function leaseStatusText(l) {
  const s = String(l.status).replaceAll("_", " ");
  if (!l.notice || l.status !== "active") return s;
  return `${s}; ends ${time(l.notice.end_ms)} for its provider's maintenance (refund of the unused hours${l.notice.in_time ? "" : ", with the provider's penalty: the notice came late"})`;
}

/** A span of time in words, rounded down: "0 s", "45 s", "3 min 20 s", "2 h 5 min", "1 d 4 h". */
function duration(ms) {
  const n = Math.max(0, Math.floor(Number(ms) || 0));
  if (n > 0 && n < 1000) return `${n} ms`;
  const s = Math.floor(n / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr} h${m % 60 ? ` ${m % 60} min` : ""}`;
  return `${Math.floor(hr / 24)} d${hr % 24 ? ` ${hr % 24} h` : ""}`;
}

/** Basis points as a percentage with two decimals ("99.50 %"), or as short as it goes ("10 %"). */
const percent = (bps) => `${(Number(bps) / 100).toFixed(2)} %`;
const percentShort = (bps) => `${Number((Number(bps) / 100).toFixed(2))} %`;

/** A lease's probe target (docs/contracts.md §10) in words, or null when it has none. */
function probeText(p) {
  if (!p) return null;
  if (p.kind === "tcp") return ["a TCP connection to ", h("code", {}, p.address)];
  if (p.kind === "http") return ["HTTP GET ", h("code", {}, p.url), ` answering ${p.status}`];
  return h("code", {}, JSON.stringify(p));
}

/**
 * A lease's availability as the consortium measured it so far, in basis points rounded down:
 * 1 − down_ms / (min(now, end_ms) − start_ms); null before the lease starts.
 */
function measuredBps(l, now = Date.now()) {
  const elapsed = Math.min(now, Number(l.fill.end_ms)) - Number(l.fill.start_ms);
  if (!(elapsed > 0)) return null;
  const down = Math.min(Math.max(Number(l.down_ms) || 0, 0), elapsed);
  return 10000 - Math.ceil((down * 10000) / elapsed);
}

/** A market's supervision terms from the catalogue's class attributes (docs/contracts.md §10). */
function termsOf(classes, market) {
  const c = (classes ?? []).find((x) => x.id === String(market).split("@")[0]);
  const a = c?.attributes ?? {};
  return { availability: Number(a["terms.availability_bps"] ?? 0), credit: Number(a["terms.credit_bps"] ?? 0) };
}

/**
 * Fills `box` with lease `l`'s supervision, for its buyer: where the other datacenters probe it,
 * its availability so far, the time found down, the service credits received, and what its
 * market promises (`classes`: the catalogue's classes, for the terms).
 */
function supervisionPart(box, l, classes) {
  const t = termsOf(classes, l.fill.market);
  const bps = measuredBps(l);
  const below = bps !== null && t.availability > 0 && bps < t.availability;
  const credited = formatCredits(l.credited ?? 0);
  box.dataset.probed = l.probe ? "true" : "false";
  box.replaceChildren(...[
    h("strong", {}, "Supervision"), ": ",
    h("span", { "data-testid": "lease-probe" }, l.probe
      ? ["probe target: ", probeText(l.probe)]
      : "not probed: the provider named no probe target"),
    " · ", h("span", { "data-testid": "lease-availability", class: below ? "error" : undefined }, bps === null
      ? "availability measured from the lease's start"
      : `measured availability${l.status === "active" ? " so far" : ""} ${percent(bps)}${below ? " (below the promise)" : ""}`),
    " · ", h("span", { "data-testid": "lease-down" }, `time found down: ${duration(l.down_ms)}`),
    " · ", h("span", { "data-testid": "lease-credits" }, `Service credits: ${credited} credit${credited === "1" ? "" : "s"}`),
    t.availability > 0 ? [" · ", h("span", { "data-testid": "lease-terms" }, `${percent(t.availability)} promised; ${t.credit > 0
      ? `below it, ${percentShort(t.credit)} of the lease's cost back` : "no credit below it"}`)] : "",
  ].flat(Infinity).filter((x) => x !== ""));
}

// A node that sheds load (503 overloaded), whose mempool is full (503 mempool_full) or that
// finds this browser over its rate (429) says when to come back with Retry-After; the request
// was refused before the node did anything, so it is sent again: at most RETRIES more times,
// each after the larger of Retry-After and a backoff doubling from 250 ms (at most 8 s), with
// jitter, while the "busy" line says so. A Retry-After past 8 s is reported instead.
const RETRIES = 4;
let retryWaits = 0;
async function fetchRetrying(url, init) {
  const busy = document.getElementById("busy");
  for (let attempt = 0; ; attempt++) {
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, "unreachable", `the node did not answer (${e.message})`);
    }
    const after = Number.parseInt(resp.headers.get("retry-after") ?? "", 10);
    if (!(resp.status === 429 || resp.status === 503) || !(after >= 0 && after <= 8) || attempt >= RETRIES) {
      return resp;
    }
    const wait = Math.min(Math.max(after * 1000, 250 * 2 ** attempt), 8000) * (1 + Math.random() / 4);
    retryWaits++;
    if (busy) {
      busy.hidden = false;
      busy.textContent = `The node is busy (${resp.status === 429 ? "too many requests from this browser" : "it sheds load"}); trying again in ${Math.max(1, Math.round(wait / 1000))} s…`;
      busy.dataset.retries = String(Number(busy.dataset.retries ?? "0") + 1);
    }
    await new Promise((r) => setTimeout(r, wait));
    retryWaits--;
    if (busy && retryWaits === 0) busy.hidden = true;
  }
}

async function api(path, { method = "GET", body, bearer } = {}) {
  const init = { method, headers: { accept: "application/json" } };
  if (bearer) init.headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetchRetrying(`/api/v1/${path}`, init);
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const err = json?.error ?? {};
    throw new ApiError(resp.status, err.code ?? `http_${resp.status}`,
      inCredits(err.message ?? `${method} ${path} answered ${resp.status}`));
  }
  return json;
}

function copyButton(getText, testid, label = "Copy") {
  const b = h("button", { type: "button", "data-testid": testid, class: "small" }, label);
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = "Copied";
    } catch {
      // No clipboard permission: select the text for the person to copy.
      b.textContent = "Select and copy by hand";
    }
    setTimeout(() => (b.textContent = label), 2000);
  });
  return b;
}

function message(el, text, kind = "info") {
  el.textContent = text;
  el.className = `msg ${kind}`;
}

function section(title, testid, ...children) {
  return h("section", { class: "panel", "data-testid": testid, "aria-labelledby": `${testid}-h` },
    h("h2", { id: `${testid}-h` }, title), ...children);
}

function table(testid, headers, rows, emptyText = "none") {
  if (!rows.length) return h("p", { class: "empty", "data-testid": testid }, emptyText);
  // A table wider than the screen scrolls in its own region, which the keyboard can reach.
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": testid.replaceAll("-", " ") },
    h("table", { "data-testid": testid },
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      rows[0].tagName === "TBODY" ? rows : h("tbody", {}, rows)));
}

// ---------------------------------------------------------------------------------------------
// Shared state

const app = {
  key: null,
  status: null,
  events: null,
  timers: [],
  route: "",
};

function clearTimers() {
  for (const t of app.timers) clearInterval(t);
  app.timers = [];
  for (const stream of ["events", "operatorEvents"]) {
    app[stream]?.close();
    app[stream] = null;
  }
}

function byteSize(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n) || 0;
  let u = 0;
  while (v >= 1024 && u + 1 < units.length) { v /= 1024; u += 1; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

// The alarm when the node's disk is below its free-space threshold (it then refuses new
// submissions with 503 until space is back), or null.
function diskAlarm(s) {
  const d = s && s.disk;
  if (!d || !d.low) return null;
  return `Disk space low on this node: ${byteSize(d.free_bytes)} free, below its ` +
    `${byteSize(d.min_free_bytes)} threshold. It refuses new orders and transactions until ` +
    "space is freed (blocks keep committing); use another node or retry later.";
}

// The node's clock against its peers' (status.clock_offset_ms): past 2 s its proposals or votes
// fail, past 10 s it refuses submissions.
function clockAlarm(s) {
  const o = s && s.clock_offset_ms;
  if (typeof o !== "number" || Math.abs(o) <= 2000) return null;
  const way = o > 0 ? "ahead of" : "behind";
  const refuses = Math.abs(o) > 10000 ? " It refuses new orders and transactions (503 clock_skew)." : "";
  return `This node's clock is ${(Math.abs(o) / 1000).toFixed(1)} s ${way} its peers'.` +
    `${refuses} Set the clock right (NTP; docs/node.md, Clock discipline).`;
}

function showDiskAlarm(s) {
  const banner = document.getElementById("disk-alarm");
  if (!banner) return;
  const text = diskAlarm(s);
  banner.hidden = !text;
  banner.textContent = text ?? "";
}

async function refreshStatus() {
  try {
    app.status = await api("status");
    const s = app.status;
    document.getElementById("node-status").textContent =
      `chain ${s.chain_id} · height ${s.height} · ${s.peers} peers${s.synced ? "" : " · syncing"}`;
    showDiskAlarm(s);
  } catch (e) {
    document.getElementById("node-status").textContent = `node unreachable: ${e.message}`;
  }
  return app.status;
}

// ---------------------------------------------------------------------------------------------
// Buyer

function keyPanel(onChange) {
  const box = section("Your key", "key-panel");
  const render = async () => {
    box.replaceChildren(box.firstChild);
    if (!app.key) {
      app.balance = null;
      if (!globalThis.crypto?.subtle) {
        box.append(h("p", { class: "msg error" }, "This browser offers no WebCrypto here: pages served over plain HTTP from another machine are not a secure context. Open the UI over HTTPS, or on this machine through 127.0.0.1 (an SSH tunnel works)."));
        return;
      }
      const text = h("textarea", { id: "key-import-text", rows: 2, "data-testid": "key-import-text",
        spellcheck: "false", autocomplete: "off", placeholder: "64 hex digits" });
      const msg = h("p", { class: "msg", role: "status", "aria-live": "polite" });
      box.append(
        h("p", {}, "A key signs your orders in this browser. It is stored here (localStorage) and never sent to the node."),
        h("button", { type: "button", "data-testid": "key-generate", onclick: async () => {
          try {
            app.key = await KeyPair.generate();
            await app.key.save();
            box.focusAfterRender = true;
            onChange();
          } catch (e) {
            message(msg, `cannot create a key: ${e.message} (this browser needs WebCrypto Ed25519)`, "error");
          }
        } }, "Create a new key"),
        h("div", { class: "field" },
          h("label", { for: "key-import-text" }, "Or import a key (the seed in hex, or the contents of a file written by surplus key generate)"),
          text),
        h("button", { type: "button", "data-testid": "key-import", onclick: async () => {
          try {
            const k = await KeyPair.fromText(text.value);
            // 64 hex digits are also what an account (a public key) looks like: refuse one that
            // is a known account while the key it would make has never been used.
            const pasted = text.value.trim().toLowerCase();
            const used = (a) => a && (BigInt(a.balance) > 0n || Number(a.seq) > 0);
            const [asAccount, mine] = await Promise.all([
              api(`accounts/${pasted}`).catch(() => null), api(`accounts/${k.publicHex}`).catch(() => null)]);
            if (used(asAccount) && !used(mine)) {
              throw new Error("This is a public key (an account on the chain), not a key: paste the seed, the 64 hex digits in the key file.");
            }
            app.key = k;
            await app.key.save();
            box.focusAfterRender = true;
            onChange();
          } catch (e) {
            message(msg, e.message, "error");
          }
        } }, "Import key"),
        msg);
      return;
    }
    const balance = h("strong", { "data-testid": "balance" }, "…");
    const faucetMsg = h("p", { class: "msg", role: "status", "aria-live": "polite", "data-testid": "faucet-status" });
    const faucet = h("button", { type: "button", "data-testid": "faucet" }, "Get sample credits");
    faucet.addEventListener("click", async () => {
      faucet.disabled = true;
      try {
        const g = await api("faucet", { method: "POST", body: { account: app.key.publicHex } });
        message(faucetMsg, `Granted ${credits(g.amount)}; they arrive with the next block. A key gets sample credits once.`, "ok");
        faucet.textContent = "Sample credits received";
        setTimeout(updateBalance, 1500);
      } catch (e) {
        if (e.code === "faucet_spent") {
          message(faucetMsg, "This key has had its sample credits already (one grant per key).", "info");
          faucet.textContent = "Sample credits received";
        } else if (e.code === "faucet_disabled" || e.status === 404) {
          message(faucetMsg, "This node has no faucet (only devnets give sample credits). Ask someone with credits for a transfer.", "info");
          faucet.hidden = true;
        } else {
          message(faucetMsg, e.message, "error");
          faucet.disabled = false;
        }
      }
    });
    const keyFile = () => {
      const a = h("a", { download: "surplus-key.txt",
        href: URL.createObjectURL(new Blob([app.key.toFileContents()], { type: "text/plain" })) });
      document.body.append(a);
      a.click();
      a.remove();
    };
    async function updateBalance() {
      try {
        const a = await api(`accounts/${app.key.publicHex}`);
        balance.textContent = credits(a.balance);
        balance.dataset.units = String(a.balance);
        app.balance = BigInt(a.balance);
        // The bid form checks against the balance: it rechecks when the balance changes.
        document.dispatchEvent(new Event("surplus:balance"));
      } catch (e) {
        balance.textContent = `unknown (${e.message})`;
      }
    }
    box.updateBalance = updateBalance;
    box.append(
      h("dl", {},
        h("dt", {}, "Public key (your account)"),
        h("dd", {}, h("code", { "data-testid": "key-public", class: "hex wrap" }, app.key.publicHex), " ",
          copyButton(() => app.key.publicHex, "key-copy")),
        h("dt", {}, "Balance"), h("dd", {}, balance)),
      h("div", { class: "row" },
        faucet,
        h("button", { type: "button", onclick: keyFile, "data-testid": "key-download" }, "Download key file"),
        h("button", { type: "button", class: "danger", "data-testid": "key-forget", onclick: () => {
          if (confirm("Forget this key? Without a copy of the key file, its credits and leases are lost to you.")) {
            KeyPair.forget();
            app.key = null;
            onChange();
          }
        } }, "Forget key")),
      faucetMsg);
    await updateBalance();
    if (box.focusAfterRender) {
      // After a new or imported key, focus goes to saving it, not back to the page's top.
      box.focusAfterRender = false;
      box.querySelector('[data-testid="key-download"]')?.focus();
    }
  };
  box.render = render;
  return box;
}

/** Bounds of a bid (docs/orders.md): slots, hours, and a limit the page accepts. */
const MAX_SLOTS = 1_000_000;
const MAX_HOURS = 43_800;
const MAX_LIMIT = 1_000_000n * UNITS_PER_CREDIT;
/** What the bid form remembers for this tab across reloads (sessionStorage). */
const BID_DRAFT = "surplus.bid-draft.v1";

/** A limit that fills now in market `m` (its lowest free reserve and a quarter), if any. */
const fillingLimit = (m) => m?.lowest_free_reserve == null ? null
  : (BigInt(m.lowest_free_reserve) * 5n + 3n) / 4n;

/** Where market `m` stands for a bid, in a sentence. */
function marketHint(m) {
  if (!m) return "";
  const what = [m.description, m.region_description].filter(Boolean).join(", ");
  const free = m.free_slots > 0
    ? `${m.offers_with_free_slots} offer${m.offers_with_free_slots === 1 ? "" : "s"} with ${m.free_slots} free slot${m.free_slots === 1 ? "" : "s"}, from ${credits(m.lowest_free_reserve)} per slot-hour.`
    : "No slot is free in this market now: a bid rests until an offer comes.";
  return `${what ? `${what}. ` : ""}${free}`;
}

function bidForm(markets, selected, onPlaced) {
  const form = h("form", { "data-testid": "bid-form", class: "form" });
  let draft = {};
  try {
    draft = JSON.parse(sessionStorage.getItem(BID_DRAFT) ?? "{}") ?? {};
  } catch {
    draft = {};
  }
  const market = h("select", { id: "bid-market", "data-testid": "bid-market", "aria-describedby": "bid-market-hint" },
    markets.map((m) => h("option", { value: m.market, selected: m.market === selected },
      m.description ? `${m.market} (${m.description})` : m.market)));
  const hint = h("p", { id: "bid-market-hint", class: "muted", "data-testid": "bid-market-hint" });
  const slots = h("input", { id: "bid-slots", "data-testid": "bid-slots", type: "number", min: 1, max: MAX_SLOTS,
    value: draft.slots ?? 1, required: true });
  const hours = h("input", { id: "bid-hours", "data-testid": "bid-hours", type: "number", min: 1, max: MAX_HOURS,
    value: draft.hours ?? 1, required: true });
  const limit = h("input", { id: "bid-limit", "data-testid": "bid-limit", inputmode: "decimal", required: true,
    value: draft.limit ?? "1", "aria-describedby": "bid-limit-help" });
  // A limit the person typed is theirs; until then the form proposes one that fills.
  let limitTyped = draft.limitTyped === true;
  limit.addEventListener("input", () => {
    limitTyped = true;
  });
  const suggest = () => {
    const m = markets.find((x) => x.market === market.value);
    hint.textContent = marketHint(m);
    const l = fillingLimit(m);
    if (!limitTyped && l != null) limit.value = formatCredits(l);
  };
  const fill = h("select", { id: "bid-fill", "data-testid": "bid-fill" },
    h("option", { value: "all_or_none" }, "All or none"),
    h("option", { value: "at_least" }, "At least …"));
  const minSlots = h("input", { id: "bid-min-slots", "data-testid": "bid-min-slots", type: "number", min: 1, value: 1 });
  const minField = h("div", { class: "field", hidden: true },
    h("label", { for: "bid-min-slots" }, "Minimum slots per fill"), minSlots);
  const total = h("output", { "data-testid": "bid-total", for: "bid-slots bid-hours bid-limit" });
  const submit = h("button", { type: "submit", "data-testid": "bid-submit" }, "Sign and place bid");
  const status = h("p", { class: "msg", role: "status", "aria-live": "polite", "data-testid": "bid-status" });

  const read = () => {
    const s = Number(slots.value);
    const hr = Number(hours.value);
    if (!Number.isInteger(s) || s < 1 || s > MAX_SLOTS) throw new Error("Slots: a whole number from 1 to 1,000,000.");
    if (!Number.isInteger(hr) || hr < 1 || hr > MAX_HOURS) throw new Error("Hours: a whole number from 1 to 43,800 (5 years).");
    let lim;
    try {
      lim = parseCredits(limit.value);
    } catch {
      throw new Error("Limit price: a number of credits, such as 0.25 (at most 6 decimals).");
    }
    if (lim < 1n) throw new Error("Limit price: more than 0 credits.");
    if (lim > MAX_LIMIT) throw new Error("Limit price: at most 1,000,000 credits per slot-hour.");
    const f = fill.value === "all_or_none" ? "all_or_none" : { at_least: Number(minSlots.value) };
    if (f !== "all_or_none" && !(f.at_least >= 1 && f.at_least <= s)) {
      throw new Error("Minimum slots per fill: 1 to the slots wanted.");
    }
    const cost = BigInt(s) * BigInt(hr) * lim;
    if (app.balance != null && cost > app.balance) {
      throw new Error(`This bid may cost up to ${credits(cost)} and your balance is ${credits(app.balance)}: lower the slots, hours or limit${app.balance === 0n ? ", or get credits first" : ""}.`);
    }
    return { market: market.value, slots: s, hours: hr, limit: lim, fill: f, cost };
  };
  const update = () => {
    minField.hidden = fill.value !== "at_least";
    try {
      sessionStorage.setItem(BID_DRAFT, JSON.stringify({ market: market.value, slots: slots.value,
        hours: hours.value, limit: limit.value, limitTyped }));
    } catch {
      // Storage full or forbidden: the form still works, it just forgets on reload.
    }
    try {
      const b = read();
      total.textContent = `${credits(b.cost)} at most (${b.slots} slot${b.slots === 1 ? "" : "s"} × ${b.hours} h × ${formatCredits(b.limit)} cr)`;
      total.dataset.units = String(b.cost);
      submit.disabled = !app.key;
      submit.textContent = `Sign and place bid (up to ${credits(b.cost)})`;
    } catch (e) {
      total.textContent = e.message;
      delete total.dataset.units;
      submit.disabled = true;
    }
  };
  market.addEventListener("input", suggest);
  const onBalance = () => {
    if (form.isConnected) update();
    else document.removeEventListener("surplus:balance", onBalance);
  };
  document.addEventListener("surplus:balance", onBalance);
  for (const x of [market, slots, hours, limit, fill, minSlots]) x.addEventListener("input", update);
  form.update = update;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!app.key) return message(status, "Create or import a key first.", "error");
    let b;
    try {
      b = read();
    } catch (e) {
      return message(status, e.message, "error");
    }
    submit.disabled = true;
    try {
      const st = app.status ?? (await refreshStatus());
      const now = Date.now();
      const nonce = new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
      const order = { side: "bid", market: b.market, slots: b.slots, limit: b.limit, hours: b.hours,
        expiry_ms: now + HOUR_MS, nonce, earliest_ms: now, latest_ms: now + HOUR_MS, fill: b.fill };
      const id = await submitSigned(st.chain_id, KIND.ORDER, encodeOrder(order));
      message(status, `Bid placed (order ${id.slice(0, 12)}…). It is matched in the next block's auction.`, "ok");
      status.dataset.order = id;
      onPlaced(id, { side: "bid", market: b.market, slots: b.slots, price: b.limit, expiry_ms: now + HOUR_MS });
    } catch (e) {
      message(status, `The bid was not placed: ${e.message}`, "error");
    } finally {
      update();
    }
  });
  form.select = (m) => {
    market.value = m;
    suggest();
    update();
  };
  form.append(
    h("div", { class: "grid" },
      h("div", { class: "field" }, h("label", { for: "bid-market" }, "Market"), market, hint),
      h("div", { class: "field" }, h("label", { for: "bid-slots" }, "Slots"), slots),
      h("div", { class: "field" }, h("label", { for: "bid-hours" }, "Hours"), hours),
      h("div", { class: "field" }, h("label", { for: "bid-limit" }, "Limit price (credits per slot-hour)"), limit,
        h("small", { id: "bid-limit-help" }, "The most you pay; you pay the clearing price.")),
      h("div", { class: "field" }, h("label", { for: "bid-fill" }, "Fill rule"), fill),
      minField),
    h("p", {}, "Total cost: ", total),
    submit, status);
  suggest();
  update();
  return form;
}

/** Signs `payload` of `kind` with the key and submits it; the entry id (hex). */
async function submitSigned(chainId, kind, payload) {
  const sb = signingBytes(chainId, kind, app.key.publicKey, payload);
  const signature = await app.key.sign(sb);
  const entry = encodeEntry({ kind, author: app.key.publicKey, signature, payload });
  const r = await api("entries", { method: "POST", body: { entry: toHex(entry) } });
  return r.id;
}

/** Shows the credential `token` (base64url) in `out`, with where it came from. */
function showCredential(out, token, how) {
  const code = h("code", { class: "hex wrap token", "data-testid": "credential-token" }, token);
  out.replaceChildren(h("p", {}, `Credential (keep it secret; present it to the provider's gateway). ${how}`),
    code, " ", copyButton(() => token, "credential-copy"));
}

const toB64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");

/**
 * Gets the lease's credential: opened here from the sealed copy every node serves with the lease
 * (docs/contracts.md §6; the node never sees it in clear), or else by the challenge the
 * provider's node answers (a lease granted without a sealed copy).
 */
async function fetchCredential(lease, out) {
  out.replaceChildren(h("span", {}, "Fetching the credential…"));
  try {
    const chainId = app.status?.chain_id ?? (await api("status")).chain_id;
    const current = await api(`leases/${lease.id}`);
    const sealed = current.lease?.grant?.sealed;
    if (current.lease?.id !== lease.id) throw new Error("the node answered another lease; nothing was opened");
    if (current.lease.status !== "active") {
      throw new Error(`The lease has ended (${current.lease.status.replace(/_/g, " ")}): its credential was revoked.`);
    }
    if (!current.lease.grant) {
      throw new Error("The provider has not granted the lease's credential yet. Try again after the next block.");
    }
    if (sealed) {
      const token = await openSealed(sealed, app.key.seed, chainId, lease.id);
      showCredential(out, toB64url(token), "Opened in this page from the copy sealed to your key.");
      return;
    }
    const c = await api(`leases/${lease.id}/challenge`, { method: "POST" });
    if (c.lease !== lease.id || c.chain_id !== chainId) {
      throw new Error("the node's challenge names another lease or chain; nothing was signed");
    }
    const sig = await app.key.sign(challengeBytes(c.chain_id, c.lease, c.challenge, c.expires_ms));
    const r = await api(`leases/${lease.id}/credential`, { method: "POST",
      body: { challenge: c.challenge, signature: toHex(sig) } });
    showCredential(out, r.token, "Fetched from the provider's node.");
  } catch (e) {
    const hint = e.code === "not_provider"
      ? " This lease's grant has no copy sealed to you: open the UI of the provider's node to fetch it."
      : e.code === "not_minted" || e.code === "unknown_lease" ? " Try again after the next block." : "";
    out.replaceChildren(h("p", { class: "msg error", "data-testid": "credential-error" }, `${e.message}${hint}`));
  }
}

async function renderBuyer(root) {
  const gen = app.gen;
  const main = h("div", { class: "columns" });
  const left = h("div", {});
  const right = h("div", {});
  main.append(left, right);
  root.replaceChildren(main);

  // The catalogue's classes, for each market's supervision terms (fetched once per visit).
  const catalogue = api("governance").then((g) => g.params?.classes ?? []).catch(() => []);
  let markets = [];
  try {
    markets = await api("markets");
  } catch (e) {
    left.append(h("p", { class: "msg error" }, `Markets unavailable: ${e.message}`));
  }
  // The market the link names, else the one this tab chose before a reload, else the one a
  // bid can fill in now at the lowest price, else one that traded.
  let remembered = null;
  try {
    remembered = JSON.parse(sessionStorage.getItem(BID_DRAFT) ?? "{}")?.market ?? null;
  } catch {
    remembered = null;
  }
  const known = (m) => markets.some((x) => x.market === m) ? m : null;
  const cheapestFree = [...markets].filter((m) => m.lowest_free_reserve != null)
    .sort((a, b) => (BigInt(a.lowest_free_reserve) < BigInt(b.lowest_free_reserve) ? -1 : 1))[0]?.market;
  let selected = known(new URLSearchParams(location.hash.split("?")[1] ?? "").get("market"))
    ?? known(remembered) ?? cheapestFree
    ?? markets.find((m) => m.last_price != null)?.market ?? markets[0]?.market;

  const marketRows = () => markets.map((m) =>
    h("tr", { "data-testid": "market-row", "data-market": m.market, class: m.market === selected ? "selected" : "" },
      h("th", { scope: "row" }, h("button", { type: "button", class: "link", "data-testid": "market-select",
        "aria-pressed": m.market === selected ? "true" : "false",
        onclick: () => selectMarket(m.market) }, m.market)),
      h("td", {}, [m.description, m.region_description].filter(Boolean).join(", ")),
      h("td", { class: "num", "data-testid": "market-last-price" }, m.last_price == null ? "—" : credits(m.last_price)),
      h("td", { class: "num", title: `${m.offers} resting, ${m.offers_with_free_slots} with a free slot` },
        `${m.free_slots} (${m.offers_with_free_slots})`), h("td", { class: "num" }, m.bids),
      h("td", { "data-testid": "market-maintenance" }, maintenanceText(m.maintenance))));
  const marketsBox = section("Markets", "markets",
    h("p", {}, "Prices are in credits per slot-hour. Select a market for its charts. Maintenance: providers' announced windows; a lease on such a pool moves to another of its provider's pools or ends at the window's start with a refund."),
    table("markets-table", ["Market", "Resource", "Last price", "Free slots (offers)", "Bids", "Maintenance"], marketRows(), "no markets"));
  const chartsBox = section("Selected market", "market-charts");
  // Orders this page placed that no block has taken yet (their fate comes from the node's
  // receipt: a node may drop one from its mempool), and the last changes the events told.
  const pending = new Map();
  const changes = [];
  const form = bidForm(markets, selected, (id, o) => {
    pending.set(id, o);
    refreshMine();
  });
  const bidBox = section("Place a bid", "bid", form);

  async function drawCharts() {
    if (!selected) return;
    const m = encodeURIComponent(selected);
    const [hist, book] = await Promise.all([
      api(`markets/${m}/history?limit=200`).catch((e) => ({ error: e })),
      api(`book?market=${m}&limit=20`).catch((e) => ({ error: e })),
    ]);
    const histBox = h("figure", { "data-testid": "history-chart" },
      h("figcaption", {}, `Clearing price history, ${selected}`),
      hist.error ? h("p", { class: "msg error" }, hist.error.message)
        : lineChart(hist.map((p) => ({ x: Number(p.time_ms), y: Number(p.price) / 1e6 })), {
          title: `clearing price of ${selected}`, formatX: (v) => clock(v), formatY: (v) => v.toFixed(3),
          yLabel: "credits / slot-hour", empty: "no trade yet" }));
    const depthBox = h("figure", { "data-testid": "depth-chart" },
      h("figcaption", {}, `Order book depth, ${selected}`),
      book.error ? h("p", { class: "msg error" }, book.error.message)
        : depthChart(
          book.bids.depth.map((l) => ({ price: Number(l.price) / 1e6, slots: l.slots })),
          book.offers.depth.map((l) => ({ price: Number(l.price) / 1e6, slots: l.slots })),
          { title: `depth of ${selected}`, formatPrice: (v) => v.toFixed(3), xLabel: "credits / slot-hour" }));
    const offers = book.error ? [] : book.offers.orders.map((o) =>
      h("tr", { "data-testid": "offer-row" },
        h("td", { class: "num" }, credits(o.price)), h("td", { class: "num" }, `${o.free} / ${o.slots}`),
        h("td", { class: "num" }, o.hours), h("td", {}, time(o.window_end_ms)), h("td", {}, short(o.author))));
    chartsBox.replaceChildren(chartsBox.firstChild,
      h("div", { class: "charts" }, histBox, depthBox),
      h("h3", {}, "Offers"),
      table("offers-table", ["Reserve", "Free / slots", "Min hours", "Available until", "Provider"], offers, "no offers"));
  }

  function selectMarket(m) {
    selected = m;
    marketsBox.querySelector("table tbody")?.replaceChildren(...marketRows());
    form.select(m);
    drawCharts();
  }

  const keyBox = keyPanel(() => {
    keyBox.render();
    startEvents();
    refreshMine();
    form.select(selected);
  });
  const ordersBox = section("My orders", "my-orders");
  const leasesBox = section("My leases", "my-leases",
    h("p", { "data-testid": "events-status", class: "live" }, "not connected"));
  const credentialBoxes = new Map();
  // Each of the buyer's leases' supervision, updated in place (a redraw would move the focus).
  const supervisionBoxes = new Map();
  let supervisedLive = false;
  let supervisionAt = 0;

  /** Brings the supervision of the shown leases up to date, at most every 5 s, while one is live. */
  async function refreshSupervision() {
    if (!app.key || !supervisedLive || Date.now() - supervisionAt < 5000) return;
    supervisionAt = Date.now();
    const k = app.key.publicHex;
    try {
      const [r, classes] = await Promise.all([api(`leases?account=${k}&limit=100`), catalogue]);
      for (const l of r.leases ?? []) {
        const box = supervisionBoxes.get(l.id);
        if (box && l.fill.buyer === k) supervisionPart(box, l, classes);
      }
    } catch {
      // Tried again at a later block.
    }
  }

  async function refreshMine() {
    keyBox.updateBalance?.();
    if (!app.key) {
      ordersBox.replaceChildren(ordersBox.firstChild, h("p", {}, "Create or import a key to see your orders."));
      leasesBox.replaceChildren(leasesBox.firstChild, leasesBox.children[1], h("p", {}, "Create or import a key to see your leases."));
      return;
    }
    const k = app.key.publicHex;
    const [orders, leases, classes] = await Promise.all([
      api(`orders?account=${k}`).catch((e) => ({ error: e })),
      api(`leases?account=${k}&limit=100`).catch((e) => ({ error: e })),
      catalogue,
    ]);
    const orderList = orders.error ? [] : (Array.isArray(orders) ? orders : orders.orders ?? []);
    for (const o of orderList) pending.delete(o.id);
    const waiting = [...pending].map(([id, o]) => ({ ...o, id, free: o.slots, waiting: true }));
    // Why a resting bid has not filled, from what the market offers now.
    const why = (o) => {
      const m = markets.find((x) => x.market === o.market);
      if (o.side !== "bid" || !m) return "";
      if (!m.free_slots) return ": no slot is free in this market";
      if (BigInt(o.price) < BigInt(m.lowest_free_reserve)) {
        return `: your limit is under the lowest reserve (${credits(m.lowest_free_reserve)})`;
      }
      return ": waits for the next auction";
    };
    const orderStatus = (o) => o.waiting ? "waiting for the next block"
      : o.side === "bid" && o.free < o.slots ? `partly filled (${o.free} of ${o.slots} slots still wanted)${why(o)}`
        : `resting${why(o)}`;
    ordersBox.replaceChildren(ordersBox.firstChild,
      orders.error ? h("p", { class: "msg error" }, `Orders unavailable: ${orders.error.message}`)
        : table("orders-table", ["Order", "Side", "Market", "Slots", "Price", "Expires", "Status", ""],
          [...waiting, ...orderList].map((o) => {
            const msg = h("span", { class: "msg", role: "status" });
            return h("tr", { "data-testid": "order-row", "data-order": o.id, "data-status": o.waiting ? "waiting" : "resting" },
              h("td", {}, short(o.id)), h("td", {}, o.side), h("td", {}, o.market),
              h("td", { class: "num" }, o.slots), h("td", { class: "num" }, credits(o.price ?? o.limit ?? o.reserve)),
              h("td", {}, time(o.expiry_ms)), h("td", { "data-testid": "order-status" }, orderStatus(o)),
              h("td", {}, o.waiting ? "" : h("button", { type: "button", class: "small", "data-testid": "order-cancel",
                onclick: async (ev) => {
                  ev.currentTarget.disabled = true;
                  try {
                    await submitSigned(app.status.chain_id, KIND.CANCEL, encodeCancel(o.id));
                    message(msg, "cancel sent", "ok");
                  } catch (e) {
                    message(msg, e.message, "error");
                  }
                } }, "Cancel"), msg));
          }), "no resting orders"),
      orders.truncated ? h("p", { class: "muted", "data-testid": "orders-truncated" },
        `The first ${orderList.length} of your resting orders (oldest first).`) : "",
      changes.length ? h("div", {}, h("h3", {}, "Latest changes"),
        h("ul", { class: "changes", "data-testid": "order-changes" },
          changes.map((c) => h("li", { "data-order": c.id, "data-status": c.status }, c.text)))) : "");
    const leaseList = leases.error ? [] : leases.leases;
    supervisedLive = leaseList.some((l) => l.fill.buyer === k && l.status === "active");
    supervisionAt = Date.now();
    const rows = leaseList.map((l) => {
      let out = credentialBoxes.get(l.id);
      if (!out) {
        out = h("div", { class: "credential" });
        credentialBoxes.set(l.id, out);
      }
      const mine = l.fill.buyer === k;
      const live = mine && l.status === "active";
      let sup = null;
      if (mine) {
        sup = supervisionBoxes.get(l.id);
        if (!sup) {
          sup = h("p", { class: "supervision", "data-testid": "lease-supervision" });
          supervisionBoxes.set(l.id, sup);
        }
        supervisionPart(sup, l, classes);
      }
      // A renewal's new credential comes with the provider's next grant: until then the old
      // one (valid to the old end) is not handed out as if it were the new one.
      const renewing = reissue.get(l.id);
      if (renewing && renewing !== l.grant?.token_hash) {
        reissue.delete(l.id);
        out.replaceChildren(h("p", { class: "msg ok", "data-testid": "credential-reissued" },
          "A new credential was issued for the renewed lease: get it again."));
      }
      // One tbody per lease: its row, then a full-width row for its credential.
      return h("tbody", { "data-testid": "lease-row", "data-lease": l.id, "data-status": l.status, "data-end": l.fill.end_ms },
        h("tr", {},
          h("td", {}, short(l.id)), h("td", {}, mine ? "buyer" : "provider"), h("td", {}, l.fill.market),
          h("td", { class: "num" }, l.fill.slots), h("td", { class: "num" }, credits(l.fill.price)),
          h("td", {}, `${time(l.fill.start_ms)} → ${time(l.fill.end_ms)}`),
          h("td", { "data-testid": "lease-status" }, leaseStatusText(l)),
          h("td", { class: "actions" },
            mine ? h("button", { type: "button", class: "small", "data-testid": "lease-credential",
              onclick: () => (reissue.has(l.id)
                ? out.replaceChildren(h("p", { class: "msg", "data-testid": "credential-error" },
                  "The renewed lease's new credential is being issued by its provider: try again after the next block."))
                : fetchCredential(l, out)) }, "Get credential") : "",
            live && !l.notice ? [" ", h("button", { type: "button", class: "small", "data-testid": "lease-renew",
              onclick: () => transition(l, "renew", out) }, "Renew 1 hour"),
            " "] : "", live ? h("button", { type: "button", class: "small danger", "data-testid": "lease-end",
              onclick: () => transition(l, "terminate", out) }, "End lease") : "",
            " ", h("a", { href: `#/auditor/verify/${l.id}`, "data-testid": "lease-verify" }, "Verify proof"))),
        h("tr", { class: "detail" }, h("td", { colspan: 8 }, sup, out)));
    });
    leasesBox.replaceChildren(leasesBox.firstChild, leasesBox.children[1],
      leases.error ? h("p", { class: "msg error" }, `Leases unavailable: ${leases.error.message}`)
        : table("leases-table", ["Lease", "Role", "Market", "Slots", "Price", "Period", "Status", ""], rows,
          "no leases yet"));
  }

  /** Leases renewed from this page whose new grant has not come yet, with the old token hash. */
  const reissue = new Map();

  /** Renews `l` by one hour, or ends it, signed here with the buyer key. */
  async function transition(l, action, out) {
    if (action === "terminate" && !confirm("End this lease now? Unused hours are refunded; the credential stops working.")) return;
    try {
      const a = await api(`accounts/${app.key.publicHex}`);
      const payload = encodeLeaseTransition({ action, lease: l.id, seq: BigInt(a.seq), hours: 1 });
      const id = await submitSigned(app.status.chain_id, KIND.LEASE_TRANSITION, payload);
      if (action === "renew" && l.grant) reissue.set(l.id, l.grant.token_hash);
      out.replaceChildren(h("p", { class: "msg ok", role: "status", "data-testid": "lease-transition-status" },
        action === "renew" ? `Renewal ${id.slice(0, 10)}… sent: the lease runs one hour longer once its block commits, and its provider issues a new credential.`
          : `Termination ${id.slice(0, 10)}… sent: the lease ends with its block.`));
    } catch (e) {
      out.replaceChildren(h("p", { class: "msg error", role: "status", "data-testid": "lease-transition-status" }, e.message));
    }
  }

  /** Records what an `order` event says, newest first (the last 8). */
  function noteOrder(d) {
    pending.delete(d.order);
    const what = { resting: "rests in the book", partly_filled: "was partly filled", filled: "was filled",
      cancelled: "was cancelled", expired: "expired", dropped: "was dropped" }[d.status] ?? d.status;
    const left = d.remaining != null && d.status !== "filled" ? ` (${d.remaining} slots still wanted)` : "";
    const why = d.reason ? `: ${d.reason}` : "";
    const side = d.side === "bid" ? "Bid" : "Offer";
    changes.unshift({ id: d.order, status: d.status,
      text: `${side} ${d.order.slice(0, 10)}… on ${d.market} ${what}${left}${why}${d.height === "none" ? "" : ` (block ${d.height})`}.` });
    changes.splice(8);
  }

  /** Asks the node what became of the orders no block has taken yet (a drop says why). */
  async function checkPending() {
    for (const id of [...pending.keys()]) {
      try {
        const r = await api(`submissions/${id}`);
        if (r.status === "dropped") {
          const o = pending.get(id);
          pending.delete(id);
          noteOrder({ order: id, status: "dropped", side: o?.side ?? "bid", market: o?.market ?? "",
            height: "none", reason: `${r.code}: ${r.message}` });
          refreshMine();
        } else if (r.status === "committed") {
          pending.delete(id);
        }
      } catch {
        // Asked again at the next block.
      }
    }
  }

  let marketsRefresh = null;
  /** Reloads the markets table and charts, at most once a second. */
  function refreshMarkets() {
    if (marketsRefresh) return;
    marketsRefresh = setTimeout(async () => {
      marketsRefresh = null;
      try {
        markets = await api("markets");
        marketsBox.querySelector("table tbody")?.replaceChildren(...marketRows());
        await drawCharts();
      } catch {
        // Shown on the next successful refresh; the status line says when the node is away.
      }
    }, 1000);
  }

  function startEvents() {
    if (app.events) app.events.close();
    app.events = null;
    if (!app.key) return;
    const indicator = leasesBox.querySelector("[data-testid=events-status]");
    const es = new EventSource(`/api/v1/events?account=${app.key.publicHex}`);
    app.events = es;
    es.onopen = () => {
      indicator.textContent = "live";
      indicator.dataset.state = "live";
    };
    es.onerror = () => {
      indicator.textContent = "reconnecting… (updates every few seconds meanwhile)";
      indicator.dataset.state = "retrying";
    };
    const onChange = (ev) => {
      indicator.textContent = `live · last ${ev.type} event at ${new Date().toLocaleTimeString()}`;
      refreshMine();
    };
    es.addEventListener("fill", onChange);
    es.addEventListener("lease", onChange);
    es.addEventListener("order", (ev) => {
      try {
        noteOrder(JSON.parse(ev.data));
      } catch {
        // A frame that is not an order event: the refresh below shows the truth anyway.
      }
      onChange(ev);
    });
    // Events were dropped for this client: read the current state instead.
    es.addEventListener("lagged", onChange);
    es.addEventListener("block", (ev) => {
      keyBox.updateBalance?.();
      refreshStatus();
      checkPending();
      // A probe target recorded, a down interval or a credit changes a lease without a lease
      // event; the availability so far moves with time anyway.
      refreshSupervision();
      let entries = 0;
      try {
        entries = JSON.parse(ev.data).entries;
      } catch {
        entries = 1;
      }
      if (entries > 0) refreshMarkets();
    });
  }

  left.append(keyBox, bidBox);
  right.append(marketsBox, chartsBox);
  root.append(ordersBox, leasesBox);
  await keyBox.render();
  if (stale(gen)) return;
  startEvents();
  await Promise.all([refreshMine(), drawCharts()]);
  if (stale(gen)) return;
  // A slow fallback when the event stream is down, and the market view follows new blocks.
  app.timers.push(setInterval(() => {
    if (app.events?.readyState !== EventSource.OPEN) refreshMine();
  }, 4000));
  // Blocks with entries refresh the markets (refreshMarkets); this covers a stream that is down.
  app.timers.push(setInterval(refreshMarkets, 10_000));
}

// ---------------------------------------------------------------------------------------------
// Operator

/**
 * A pool's maintenance cell on the operator page: its window with a button that ends it, or a
 * form that announces one (`POST /api/v1/operator/maintenance`).
 */
function maintenanceCell(pool, window, bearer) {
  const said = h("span", { class: "msg", role: "status", "data-testid": "drain-result" });
  if (window) {
    const done = h("button", { type: "button", class: "small", "data-testid": "drain-done" }, "Back on the market");
    done.addEventListener("click", async () => {
      try {
        const r = await api("operator/maintenance/done", { method: "POST", bearer, body: { pool } });
        message(said, `submitted (${r.id.slice(0, 10)}…): the pool's offers return with the next block`, "ok");
      } catch (e) {
        message(said, e.message, "error");
      }
    });
    return h("div", { "data-testid": "pool-maintenance" },
      `from ${time(window.start_ms)}${Number(window.until_ms) ? ` to ${time(window.until_ms)}` : " until ended"}: ${window.reason} `, done, said);
  }
  const id = `drain-${pool.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const start = h("input", { type: "datetime-local", id: `${id}-start`, "data-testid": "drain-start" });
  const reason = h("input", { id: `${id}-reason`, maxlength: 500, required: true, "data-testid": "drain-reason",
    placeholder: "why (buyers see it)" });
  const emergency = h("input", { type: "checkbox", id: `${id}-emergency`, "data-testid": "drain-emergency" });
  const form = h("form", { class: "stack small" },
    h("label", { for: `${id}-start` }, "Work starts (empty: after the consortium's notice period)"), start,
    h("label", { for: `${id}-reason` }, "Reason"), reason,
    h("label", { for: `${id}-emergency` }, emergency, " Emergency: sooner than the notice period (leases that cannot move pay the penalty)"),
    h("button", { type: "submit", class: "danger small", "data-testid": "drain-submit" }, "Drain this pool"), said);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { pool, reason: reason.value, emergency: emergency.checked };
    if (start.value) body.start_ms = new Date(start.value).getTime();
    try {
      const r = await api("operator/maintenance", { method: "POST", bearer, body });
      message(said, `submitted (${r.id.slice(0, 10)}…): maintenance from ${time(r.start_ms)}; the pool's leases move or get notice`, "ok");
    } catch (e) {
      message(said, e.message, "error");
    }
  });
  return h("details", { "data-testid": "pool-drain" }, h("summary", {}, "Drain…"), form);
}

function kv(obj) {
  if (obj === null || obj === undefined) return h("p", { class: "empty" }, "none");
  if (typeof obj !== "object") return h("span", {}, String(obj));
  return h("dl", { class: "kv" }, Object.entries(obj).map(([k, v]) => [
    h("dt", {}, k.replaceAll("_", " ")),
    h("dd", {}, typeof v === "object" && v !== null ? h("pre", {}, JSON.stringify(v, null, 1)) : String(v)),
  ]));
}

function listOf(value) {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    for (const k of ["pools", "items", "offers", "leases", "markets"]) if (Array.isArray(value[k])) return value[k];
  }
  return null;
}

function genericTable(testid, rows, emptyText) {
  const list = listOf(rows);
  if (!list) return rows == null ? h("p", { class: "empty", "data-testid": testid }, emptyText) : kv(rows);
  if (!list.length) return h("p", { class: "empty", "data-testid": testid }, emptyText);
  const cols = [...new Set(list.flatMap((r) => Object.keys(r ?? {})))].slice(0, 9);
  return table(testid, cols.map((c) => c.replaceAll("_", " ")), list.map((r) => h("tr", {},
    cols.map((c) => {
      const v = r?.[c];
      if (typeof v === "string" && /^[0-9a-f]{64,}$/.test(v)) return h("td", {}, short(v));
      if (typeof v === "object" && v !== null) return h("td", {}, h("code", {}, JSON.stringify(v).slice(0, 120)));
      return h("td", {}, v === undefined ? "" : String(v));
    }))), emptyText);
}

// The node's operator token (DIR/operator.token), kept for this browser tab only. A link
// ending in #/operator?token=… (as `surplus devnet` prints) stores it and drops it from the URL.
const TOKEN_KEY = "surplus.operatorToken";
function operatorToken() {
  const m = location.hash.match(/^#\/operator\?(?:.*&)?token=([0-9a-fA-F]{64})/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", "#/operator");
    app.route = "#/operator";
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

// Asks for the operator token when the node refused the operator's view without it.
function tokenForm(root, e) {
  const input = h("input", { type: "password", id: "operator-token", autocomplete: "off",
    placeholder: "64 hex digits", "aria-label": "operator token", "data-testid": "operator-token" });
  const form = h("form", { class: "stack", "data-testid": "operator-token-form" },
    h("p", { class: "msg error" }, e.message),
    h("p", {}, "The operator's view needs this node's operator token: it is in " +
      "DIR/operator.token on the node's machine (`surplus devnet` prints a link that carries it)."),
    h("label", { for: "operator-token" }, "Operator token"), input,
    h("button", { type: "submit" }, "Open the operator's view"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(t)) {
      input.setCustomValidity("64 hex digits");
      input.reportValidity();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    renderOperator(root).catch(() => {});
  });
  return form;
}

// ---------------------------------------------------------------------------------------------
// Governance (docs/governance.md)

/** A proposal's action in a few words. */
function describeAction(a) {
  switch (a.type) {
    case "add_validator": return `add validator ${a.key.slice(0, 10)}… (power ${a.power}) at ${a.address}`;
    case "remove_validator": return `remove validator ${a.key.slice(0, 10)}…`;
    case "set_power": return `set validator ${a.key.slice(0, 10)}…'s power to ${a.power}`;
    case "set_fees": return `fee ${a.fee_bps} bps, penalty ${a.penalty_bps} bps`;
    case "add_class": return `add class ${a.class.id}`;
    case "retire_class": return `retire class ${a.id}`;
    case "add_region": return `add region ${a.region.id}`;
    case "retire_region": return `retire region ${a.id}`;
    case "rotate_validator": return `replace validator key ${a.old.slice(0, 10)}… by ${a.new.slice(0, 10)}…`;
    case "set_consensus": return `a block every ${a.params.batch_interval_ms} ms, at most ${a.params.max_block_entries} entries and ${a.params.max_block_bytes} bytes`;
    default: return a.type;
  }
}

/** The proposals table; `vote(p, yes)` (optional) adds this node's vote buttons. */
function proposalsTable(testid, g, me, vote) {
  const rows = (g.proposals ?? []).map((p) => {
    const mine = p.voters.find((v) => v.key === me);
    const voted = mine && mine.vote !== null && mine.vote !== undefined;
    const canVote = vote && mine && !voted && p.status === "open";
    const buttons = canVote ? h("td", {},
      h("button", { "data-testid": "vote-yes", onclick: () => vote(p, true) }, "Vote yes"), " ",
      h("button", { "data-testid": "vote-no", onclick: () => vote(p, false) }, "Vote no"))
      : h("td", {}, voted ? (mine.vote ? "voted yes" : "voted no") : "—");
    return h("tr", { "data-proposal": p.id }, h("td", {}, short(p.id)), h("td", {}, describeAction(p.action)),
      h("td", {}, p.status), h("td", { class: "num" }, p.effective),
      h("td", { class: "num" }, p.passed ?? p.deadline),
      h("td", { class: "num" }, `${p.yes_power} yes · ${p.no_power} no / ${p.quorum} needed`),
      vote ? buttons : null);
  });
  const headers = ["Proposal", "Change", "Status", "Effective at", "Passed at / deadline", "Votes"];
  if (vote) headers.push("This node");
  return table(testid, headers, rows, "no open proposals");
}

/** The validators in force, with powers and addresses. */
function validatorsTable(testid, keys, powers, addresses) {
  return table(testid, ["#", "Validator", "Power", "Address"], keys.map((k, i) => h("tr", {},
    h("td", { class: "num" }, i), h("td", {}, short(k)), h("td", { class: "num" }, powers[i]),
    h("td", {}, addresses?.[i] || "—"))), "no validators");
}

async function renderOperator(root) {
  const gen = app.gen;
  const bearer = operatorToken();
  const [op, status, cps, gov] = await Promise.all([
    api("operator", { bearer }).catch((e) => ({ error: e })),
    api("status").catch((e) => ({ error: e })),
    api("checkpoints").catch((e) => ({ error: e })),
    api("governance").catch((e) => ({ error: e })),
  ]);
  if (stale(gen)) return;
  const err = (x) => h("p", { class: "msg error" }, x.error.message);
  const alarm = status.error ? null : diskAlarm(status);
  if (!status.error) showDiskAlarm(status);
  const statusBox = section("This node", "operator-status", status.error ? err(status) : [
    h("p", { "data-testid": "operator-height" }, `Height ${status.height} · ${status.peers} peers · ${status.validator ? "validator" : "not a validator"}`),
    alarm ? h("p", { class: "alarm", role: "alert", "data-testid": "operator-disk-alarm" }, alarm) : null,
    clockAlarm(status) ? h("p", { class: "alarm", role: "alert", "data-testid": "operator-clock-alarm" }, clockAlarm(status)) : null,
    kv(status),
  ]);
  const boxes = [statusBox];
  if (op.error && op.error.code === "operator_only") {
    if (bearer) sessionStorage.removeItem(TOKEN_KEY);
    boxes.push(section("Operator", "operator", tokenForm(root, op.error)));
  } else if (op.error) {
    boxes.push(section("Operator", "operator", err(op)));
  } else {
    const earnings = op.earnings ?? null;
    // The provider bond (docs/operations.md, Bond) next to the balance it is locked from.
    const money = earnings ? Object.entries(earnings) : [];
    if (earnings && op.bond != null) money.splice(money.findIndex(([k]) => k === "balance") + 1, 0, ["bond", op.bond]);
    boxes.push(section("Earnings", "operator-earnings", earnings
      ? h("dl", { class: "kv" }, money.map(([k, v]) => [
        h("dt", {}, k === "bond" ? "bond (locked for offers and leases)" : k.replaceAll("_", " ")),
        h("dd", { "data-testid": `earnings-${k}` }, typeof v === "number" ? credits(v) : String(v))]))
      : h("p", { class: "empty" }, "not reported by this node")));
    const leased = (op.leased ?? []).map((p) => ({ x: Number(p.time_ms), y: Number(p.slots) }));
    boxes.push(section("Leased capacity over time", "operator-leased",
      h("figure", { "data-testid": "leased-chart" },
        lineChart(leased, { title: "leased slots over time", formatX: clock, formatY: (v) => String(Number(v.toPrecision(3))),
          yLabel: "slots leased", step: true, empty: "nothing leased yet" }))));
    const pools = listOf(op.inventory?.pool) ?? [];
    const use = new Map((op.pools ?? []).map((u) => [u.name, u]));
    const pct = (a, b) => (b > 0 ? `${Math.round((100 * a) / b)}%` : "—");
    boxes.push(section("Inventory", "operator-inventory",
      h("p", {}, "Each pool of the inventory file: its slots, what this node offers in its market and leases on the pool now, and its terms. Pools of one market are offered together. Drain a pool to take it out of the market for maintenance: its leases move to another pool of the market with room, or get notice for the window's start (docs/operations.md)."),
      table("inventory-table", ["Pool", "Market", "Slots", "Offered", "Free now", "Leased", "In use", "Reserve", "Min hours", "Horizon", "Maintenance"],
        pools.map((p) => {
          const market = `${p.class}@${p.region}`;
          const name = p.name ?? market;
          const u = use.get(name) ?? { offered: 0, free: 0, leased: 0 };
          return h("tr", { "data-testid": "pool-row", "data-market": market, "data-pool": name, "data-drained": u.maintenance ? "true" : "false" },
            h("td", {}, name), h("td", {}, market), h("td", { class: "num" }, p.slots), h("td", { class: "num" }, u.offered),
            h("td", { class: "num" }, u.free), h("td", { class: "num", "data-testid": "pool-leased" }, u.leased),
            h("td", { class: "num" }, pct(u.leased, p.slots)),
            h("td", { class: "num" }, `${credits(p.reserve)} / slot-hour`), h("td", { class: "num" }, p.min_hours),
            h("td", { class: "num" }, `${p.horizon_hours} h`), h("td", {}, maintenanceCell(name, u.maintenance, bearer)));
        }), op.inventory ? "no pools" : "no inventory file: this node offers nothing by itself")));
    if (op.capacity) {
      const c = op.capacity;
      const short = c.classes.filter((k) => Number(k.short) > 0);
      if (c.alert) {
        boxes.splice(1, 0, h("p", { class: "alarm", role: "alert", "data-testid": "operator-capacity-alarm" },
          `The capacity source reports less than is leased of ${short.map((k) => `${k.class} (${k.leased} leased, ${k.sellable} sellable)`).join(", ")}: this node offers none of it; the running leases go on. Free capacity, or end leases by hand.`));
      }
      boxes.push(section("Capacity source", "operator-capacity",
        h("p", {}, `What the datacenter's ${c.source} source last reported (${c.at_ms > 0 ? time(c.at_ms) : "never"}), less a ${c.headroom_percent}% headroom: this node offers at most the sellable slots of each class.`),
        c.error ? h("p", { class: "msg error", "data-testid": "operator-capacity-error" }, `Its last reading failed (the one before still counts): ${c.error}`) : "",
        table("capacity-table", ["Class", "Reported free", "Sellable", "Leased", "Short"],
          c.classes.map((k) => h("tr", { "data-testid": "capacity-row", "data-class": k.class, class: Number(k.short) > 0 ? "short" : "" },
            h("td", {}, k.class), h("td", { class: "num" }, k.reported), h("td", { class: "num" }, k.sellable),
            h("td", { class: "num" }, k.leased), h("td", { class: "num" }, k.short))), "no classes reported")));
    }
    // Withdrawing a market's offers (its free capacity leaves the market, leases run on), and
    // offering it again.
    const offered = (market, yes, said) => async () => {
      try {
        await api("operator/offers", { method: "POST", bearer, body: { market, offered: yes } });
        message(said, yes ? `${market} is offered again with the next block` : `${market}'s free offers are withdrawn with the next block; its leases run on`, "ok");
      } catch (e) {
        message(said, e.message, "error");
      }
    };
    const offersSaid = h("p", { class: "msg", role: "status", "data-testid": "offers-result" });
    const withdrawn = op.withdrawn ?? [];
    boxes.push(section("Live offers", "operator-offers",
      withdrawn.length ? h("ul", { "data-testid": "withdrawn-markets" }, withdrawn.map((m) => h("li", { "data-market": m },
        `${m}: withdrawn by the operator `, h("button", { type: "button", class: "small", "data-testid": "offers-restore",
          onclick: offered(m, true, offersSaid) }, "Offer again")))) : "",
      table("operator-offers-table",
        ["Order", "Market", "Free / slots", "Reserve", "Min hours", "Available until", ""],
        (op.offers ?? []).map((o) => h("tr", { "data-testid": "operator-offer", "data-market": o.market },
          h("td", {}, short(o.id)), h("td", {}, o.market),
          h("td", { class: "num" }, `${o.free} / ${o.slots}`), h("td", { class: "num" }, credits(o.price)),
          h("td", { class: "num" }, o.hours), h("td", {}, time(o.window_end_ms)),
          h("td", {}, withdrawn.includes(o.market) ? "" : h("button", { type: "button", class: "small danger", "data-testid": "offer-withdraw",
            title: "Stop offering this market's free capacity; its leases run on", onclick: offered(o.market, false, offersSaid) }, "Withdraw")))),
        "no live offers"), offersSaid));
    const prov = new Map((op.provisioning ?? []).map((p) => [p.lease, p.record]));
    const now = Date.now();
    const left = (l) => {
      if (l.status !== "active") return "ended";
      const ms = Number(l.fill.end_ms) - now;
      if (ms <= 0) return "ending";
      const hrs = Math.floor(ms / 3_600_000);
      return hrs >= 1 ? `${hrs} h ${Math.floor((ms % 3_600_000) / 60_000)} min` : `${Math.ceil(ms / 60_000)} min`;
    };
    const hookText = (r) => {
      if (!r) return "—";
      const step = (name, o) => !o ? null : o.ok
        ? `${name} ok${o.attempts > 1 ? ` after ${o.attempts} attempts` : ""}`
        : `${name} failed after ${o.attempts} attempt${o.attempts === 1 ? "" : "s"}: ${o.error ?? "no reason"}`;
      const ended = r.terminated ? `ended early by the operator: ${r.terminated.reason}` : null;
      const moves = (r.moves ?? []).map((m) => step(`move ${m.from} → ${m.to}`, m.outcome));
      const pool = r.pool ? `on ${r.pool}` : null;
      return [pool, step("start", r.start), ...moves, step("end", r.end), ended].filter(Boolean).join("; ") || "waiting for the start hook";
    };
    // Ending a lease early, with the reason the operator gives (kept with the lease's record).
    const endEarly = (l) => {
      if (l.status !== "active") return "";
      const reason = h("input", { "aria-label": `Why lease ${l.id.slice(0, 10)} ends early`, maxlength: 500,
        "data-testid": "terminate-reason", placeholder: "why (the buyer may ask)" });
      const said = h("span", { class: "msg", role: "status" });
      const form = h("form", { class: "row" }, reason,
        h("button", { type: "submit", class: "danger small", "data-testid": "terminate-submit" }, "End now (penalty applies)"), said);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        try {
          const r = await api("operator/terminations", { method: "POST", bearer, body: { lease: l.id, reason: reason.value } });
          message(said, `ended: termination ${r.id.slice(0, 10)}… submitted`, "ok");
        } catch (e) {
          message(said, e.message, "error");
        }
      });
      return h("details", { "data-testid": "lease-end-early" }, h("summary", {}, "End early…"), form);
    };
    const failed = [...prov.values()].filter((r) => r?.start && !r.start.ok).length;
    if (failed) {
      boxes.splice(1, 0, h("p", { class: "alarm", role: "alert", "data-testid": "operator-hook-alarm" },
        `${failed} active lease${failed === 1 ? "" : "s"} whose start hook failed: the buyer${failed === 1 ? " has" : "s have"} no access; see the lease rows below and the node log.`));
    }
    boxes.push(section(`Leases as provider (${op.active_leases ?? 0} active)`, "operator-leases", table("operator-leases-table",
      ["Lease", "Buyer", "Market", "Slots", "Price", "Period", "Time left", "Status", "Provisioning", ""],
      (op.leases ?? []).map((l) => h("tr", { "data-testid": "operator-lease", "data-lease": l.id, "data-status": l.status },
        h("td", {}, short(l.id)), h("td", {}, short(l.fill.buyer)),
        h("td", {}, l.fill.market), h("td", { class: "num" }, l.fill.slots), h("td", { class: "num" }, credits(l.fill.price)),
        h("td", {}, `${time(l.fill.start_ms)} → ${time(l.fill.end_ms)}`), h("td", {}, left(l)),
        h("td", {}, leaseStatusText(l)), h("td", {}, hookText(prov.get(l.id))), h("td", {}, endEarly(l)))),
      "no leases")));
    // Its live leases as the other datacenters see them (docs/operations.md, Supervision).
    const decision = (d) => ["not decided", "down, credited", "down during maintenance"][d] ?? `decision ${d}`;
    const keys = (list) => (list?.length ? list.map((k) => short(k, 6)).flatMap((x, i) => (i ? [", ", x] : [x])) : "none");
    boxes.push(section("Supervision", "operator-supervision",
      h("p", {}, "Each live lease of this node as the other datacenters see it: where they probe it, the time a quorum of them found it down and the service credits its buyer got for it, and each interval some of them reported down. One vantage point alone reporting a lease down is worth a look at the network between you; most of them reporting it is an outage. Inside a maintenance window down intervals are not credited."),
      table("supervision-table", ["Lease", "Probe target", "Found down", "Credits paid", "Intervals reported down"],
        (op.watched ?? []).map((w) => h("tr", { "data-testid": "watched-lease", "data-lease": w.lease },
          h("td", {}, short(w.lease)),
          h("td", {}, w.probe ? probeText(w.probe) : "none: the hook named no probe target, so nobody probes it"),
          h("td", { class: "num" }, duration(w.down_ms)), h("td", { class: "num" }, credits(w.credited)),
          h("td", {}, w.intervals?.length
            ? h("ul", { class: "intervals" }, w.intervals.map((i) => h("li", { "data-testid": "watched-interval",
              "data-decided": i.decided }, `${clock(i.start_ms)}–${clock(i.end_ms)}: reported down by `, keys(i.down),
            i.silent?.length ? ["; not by ", keys(i.silent)] : " (every vantage point)", "; ",
            h("strong", {}, decision(i.decided)))))
            : "none"))),
        "no live leases")));
    boxes.push(section("Peers", "operator-peers", table("peers-table", ["Name", "Node key", "Address", "Gossip score"],
      (op.peers ?? []).map((p) => h("tr", { "data-testid": "peer-row" },
        h("td", {}, p.name ?? "(no name)"), h("td", {}, p.key ? short(p.key) : h("span", { title: p.id }, "unknown")),
        h("td", {}, h("code", {}, p.address)),
        h("td", { class: "num" }, p.score == null ? "—" : p.score.toFixed(2)))), "no peers")));
  }
  if (!gov.error && !status.error) {
    const msg = h("p", { "data-testid": "operator-vote-result", "aria-live": "polite" });
    const vote = !op.error && status.validator ? async (p, yes) => {
      msg.className = "msg";
      msg.textContent = "Signing the vote with this node's key…";
      try {
        const r = await api("operator/votes", { method: "POST", bearer, body: { proposal: p.id, yes } });
        msg.textContent = `Vote ${r.id.slice(0, 10)}… submitted: ${yes ? "yes" : "no"} on ${p.id.slice(0, 10)}…`;
      } catch (e) {
        msg.className = "msg error";
        msg.textContent = e.message;
      }
    } : null;
    boxes.push(section("Governance", "operator-governance",
      h("p", {}, status.validator
        ? "This node is a validator: it votes on proposals with its node key (docs/governance.md)."
        : "This node is not a validator; only validators vote."),
      proposalsTable("operator-proposals", gov, status.public_key, vote), msg));
  }
  const cpList = cps.error ? null : (Array.isArray(cps) ? cps : cps.checkpoints ?? []);
  boxes.push(section("Consensus health: checkpoints", "operator-checkpoints",
    cps.error ? err(cps) : table("checkpoints-table", ["Signer", "Height", "Tree size", "Root", "Header hash"],
      cpList.map((c) => h("tr", {}, h("td", {}, short(c.signer)), h("td", { class: "num" }, c.checkpoint.height),
        h("td", { class: "num" }, c.checkpoint.tree_size), h("td", {}, short(c.checkpoint.root)),
        h("td", {}, short(c.checkpoint.header_hash)))), "no checkpoints received yet"),
    h("p", {}, "Checkpoints are signed statements of the ledger each node holds; two different header hashes at one height would show a fork.")));
  root.replaceChildren(h("div", { class: "stack" }, boxes));
  // No refresh while the token form waits for input (it would clear it).
  if (op.error?.code === "operator_only") return;
  // Live: each block the node announces redraws the page (at most once a second, and not while
  // the operator types in one of its fields); every 10 s anyway.
  if (!app.operatorEvents && !status.error) {
    const es = new EventSource(`/api/v1/events?account=${status.public_key}`);
    app.operatorEvents = es;
    es.addEventListener("block", () => {
      refreshStatus();
      scheduleOperatorRefresh(root);
    });
  }
  app.timers.push(setInterval(() => scheduleOperatorRefresh(root), 10_000));
  clearIntervalExceptLast();
}

let operatorRefresh = null;
function scheduleOperatorRefresh(root) {
  if (operatorRefresh) return;
  operatorRefresh = setTimeout(function again() {
    if (!app.route.startsWith("#/operator")) {
      operatorRefresh = null;
      app.operatorEvents?.close();
      app.operatorEvents = null;
      return;
    }
    // Not while the operator types (a reason, a token): the redraw would drop the text.
    const focused = document.activeElement;
    if (focused && root.contains(focused) && focused.matches("input, textarea, select")) {
      operatorRefresh = setTimeout(again, 1000);
      return;
    }
    operatorRefresh = null;
    renderOperator(root).catch(() => {});
  }, 1000);
}

// Each operator refresh pushes one timer; keep only the newest.
function clearIntervalExceptLast() {
  while (app.timers.length > 1) clearInterval(app.timers.shift());
}

// ---------------------------------------------------------------------------------------------
// Auditor

async function renderAuditor(root, rest) {
  const [what, arg] = rest;
  if (what === "block") return renderBlock(root, arg);
  const verifyBox = section("Verify a lease's inclusion proof", "verify");
  const input = h("input", { id: "verify-lease", "data-testid": "verify-lease", value: what === "verify" ? arg ?? "" : "",
    size: 70, spellcheck: "false", autocomplete: "off", placeholder: "lease id (64 hex digits)" });
  const result = h("div", { "data-testid": "verify-result", "aria-live": "polite" });
  const form = h("form", { class: "row" },
    h("label", { for: "verify-lease" }, "Lease id"), input,
    h("button", { type: "submit", "data-testid": "verify-run" }, "Verify in this browser"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    runVerify(input.value.trim().toLowerCase(), result);
  });
  verifyBox.append(
    h("p", {}, "Fetches the lease's proof bundle and the chain's validator set from this node, then checks everything here: the Merkle path to the checkpoint root, the block header hash, the node's checkpoint signature and the validators' commit certificate. The validator set comes from this node and is shown with the result, with the keys that signed; pin your consortium's genesis hash above to be sure the node serves your chain."),
    form, result);
  const head = app.status?.height;
  const exportBox = section("Export the ledger", "export",
    h("p", {}, "The whole ledger as one file, to audit offline with ", h("code", {}, "surplus audit FILE"),
      ". The file's name says the height it covers (", h("code", {}, "CHAIN-HEIGHT.surplus-ledger"),
      "). The node reuses an export up to a minute old; the second link asks for one up to the current head."),
    h("div", { class: "row" },
      h("a", { href: "/api/v1/export", download: "", "data-testid": "export-link", class: "button" },
        "Download the latest export"),
      h("a", { href: "/api/v1/export?fresh=true", download: "", "data-testid": "export-fresh-link", class: "button" },
        head == null ? "Download up to the current head" : `Download up to the current head (height ${head} now)`)));
  const blocksBox = section("Blocks", "blocks");
  root.replaceChildren(h("div", { class: "stack" }, await anchorPanel(), verifyBox, stateProofPanel(),
    await governancePanel(), blocksBox, exportBox));
  await renderBlockList(blocksBox, null);
  if (what === "verify" && arg) runVerify(arg.toLowerCase(), result);
}

/** Where the auditor's pinned genesis hash is kept (this browser only). */
const GENESIS_PIN = "surplus.genesis-pin.v1";
const genesisPin = () => localStorage.getItem(GENESIS_PIN);

/** This node's genesis hash: block 0's header, hashed here. */
async function nodeGenesis() {
  if (!app.genesis) {
    const b = await api("blocks/0");
    app.genesis = { hash: toHex(headerHash(b.header)), chainId: b.header.chain_id };
  }
  return app.genesis;
}

/**
 * The auditor's trust anchor: the genesis hash of the consortium (from `surplus genesis`, or a
 * member), pinned in this browser; every verification then fails on a node of another chain.
 */
async function anchorPanel() {
  const box = section("Trust anchor", "auditor-anchor");
  let g;
  try {
    g = await nodeGenesis();
  } catch (e) {
    box.append(h("p", { class: "msg error" }, `Cannot read this node's genesis block: ${e.message}`));
    return box;
  }
  const pin = genesisPin();
  const input = h("input", { id: "genesis-pin", "data-testid": "genesis-pin", size: 66, spellcheck: "false",
    autocomplete: "off", placeholder: "genesis hash (64 hex digits)", value: pin ?? "" });
  const msg = h("p", { role: "status", "aria-live": "polite", "data-testid": "genesis-pin-status" });
  const show = () => {
    const p = genesisPin();
    msg.className = !p ? "msg" : p === g.hash ? "msg ok" : "msg error";
    msg.textContent = !p
      ? "No genesis hash pinned: results trust this node's chain. Pin your consortium's (printed by surplus genesis) to catch a node of another chain."
      : p === g.hash ? "This node's genesis matches the pinned hash."
        : `This node serves another chain: its genesis is ${g.hash}, the pinned one ${p}. Do not trust its results.`;
  };
  const form = h("form", { class: "row" }, h("label", { for: "genesis-pin" }, "Expected genesis hash"), input,
    h("button", { type: "submit", "data-testid": "genesis-pin-save" }, "Pin"),
    h("button", { type: "button", "data-testid": "genesis-pin-clear", onclick: () => {
      localStorage.removeItem(GENESIS_PIN);
      input.value = "";
      show();
    } }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(v)) {
      msg.className = "msg error";
      msg.textContent = "A genesis hash is 64 hex digits.";
      return;
    }
    localStorage.setItem(GENESIS_PIN, v);
    show();
  });
  box.append(h("dl", { class: "kv" }, h("dt", {}, "This node's chain"), h("dd", {}, g.chainId),
    h("dt", {}, "Its genesis hash"), h("dd", {}, h("code", { class: "hex wrap", "data-testid": "node-genesis" }, g.hash))),
  form, msg);
  show();
  return box;
}

// The validator set at any height, every set change, and the proposals open now.
async function governancePanel() {
  const box = section("Validators and governance", "auditor-governance");
  let g;
  try {
    g = await api("governance");
  } catch (e) {
    box.append(h("p", { class: "msg error" }, `Cannot read governance: ${e.message}`));
    return box;
  }
  const at = h("input", { id: "set-height", "data-testid": "set-height", type: "number", min: 1, size: 10,
    value: g.height + 1 });
  const setBox = h("div", { "data-testid": "set-at-height", "aria-live": "polite" });
  const show = async () => {
    try {
      const c = await api(`chain?height=${encodeURIComponent(at.value)}`);
      const byKey = Object.fromEntries(g.validators.map((v) => [v.key, v.address]));
      setBox.replaceChildren(h("p", {}, `Block ${c.height} is decided by ${c.validators.length} validators, total power ${c.total_power}; a certificate needs ${c.quorum}.`),
        validatorsTable("set-table", c.validators, c.powers, c.validators.map((k) => byKey[k])));
    } catch (e) {
      setBox.replaceChildren(h("p", { class: "msg error" }, e.message));
    }
  };
  const form = h("form", { class: "row" }, h("label", { for: "set-height" }, "Validator set of block"), at,
    h("button", { type: "submit", "data-testid": "set-show" }, "Show"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  const history = table("set-history", ["From block", "Validators", "Total power", "Changed by"],
    (g.history ?? []).map((p) => h("tr", {}, h("td", { class: "num" }, p.from_height || 1),
      h("td", {}, p.validators.map((k) => short(k, 6)).flatMap((x, i) => (i ? [" ", x] : [x]))),
      h("td", { class: "num" }, p.powers.reduce((a, b) => a + b, 0)),
      h("td", {}, p.from_height > 1
        ? h("a", { href: `#/auditor/block/${p.from_height - 1}` }, `block ${p.from_height - 1} (its gov-outcome and validator-set entries)`)
        : "genesis"))));
  box.append(
    h("p", {}, `Fee ${g.params.fee_bps} bps · penalty ${g.params.penalty_bps} bps · ${g.params.classes.length} classes · ${g.params.regions.length} regions. A change passes with more than two thirds of the voting power and applies at its effective height.`),
    form, setBox, h("h3", {}, "Every validator set"), history, h("h3", {}, "Open proposals"),
    proposalsTable("auditor-proposals", g, null, null));
  await show();
  return box;
}

// A state proof (docs/api.md, "State proofs"): pasted, or fetched from this node for an account
// key or a lease id, then checked here against the chain id and validators this page trusts.
function stateProofPanel() {
  const box = section("Check a state proof", "state-proof");
  const text = h("textarea", { id: "state-proof-text", "data-testid": "state-proof-text", rows: 6, cols: 80,
    spellcheck: "false", placeholder: "a surplus-state-proof/v1 document (JSON)" });
  const kind = h("select", { id: "state-proof-kind", "data-testid": "state-proof-kind" },
    h("option", { value: "account" }, "Account key"), h("option", { value: "lease" }, "Lease id"));
  const subject = h("input", { id: "state-proof-subject", "data-testid": "state-proof-subject", size: 70,
    spellcheck: "false", autocomplete: "off", placeholder: "64 hex digits" });
  const result = h("div", { "data-testid": "state-proof-result", "aria-live": "polite" });
  const fetchForm = h("form", { class: "row" },
    h("label", { for: "state-proof-kind" }, "Fetch for"), kind, subject,
    h("button", { type: "submit", "data-testid": "state-proof-fetch" }, "Fetch from this node"));
  fetchForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = subject.value.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(id)) {
      result.dataset.result = "fail";
      result.replaceChildren(h("p", { class: "msg error" }, "A key or lease id is 64 hex digits."));
      return;
    }
    const path = kind.value === "account" ? `accounts/${id}/proof` : `leases/${id}/state-proof`;
    result.dataset.result = "running";
    result.replaceChildren(h("p", {}, "Fetching the state proof…"));
    try {
      text.value = JSON.stringify(await api(path), null, 1);
    } catch (e) {
      result.dataset.result = "fail";
      result.replaceChildren(h("p", { class: "msg error" }, `Cannot fetch the state proof: ${e.message}`));
      return;
    }
    await runStateProof(text.value, result);
  });
  const checkButton = h("button", { type: "button", "data-testid": "state-proof-run" }, "Verify in this browser");
  checkButton.addEventListener("click", () => runStateProof(text.value, result));
  box.append(
    h("p", {}, "Checks a state proof (an account's balance and sequence number, or a live lease, or its absence, proven against a block's state root) here: the key hash, the header hash, the validators' commit certificate and the sparse Merkle proof. The chain id and validator set come from this node (shown with the result): compare them with your consortium's genesis file before trusting a PASS."),
    fetchForm,
    h("label", { for: "state-proof-text" }, "Or paste a document"), text,
    h("div", { class: "row" }, checkButton),
    result);
  return box;
}

async function runStateProof(textValue, result) {
  let doc;
  try {
    doc = JSON.parse(textValue);
  } catch (e) {
    result.dataset.result = "fail";
    result.replaceChildren(h("p", { class: "msg error" }, `The document is not JSON: ${e.message}`));
    return;
  }
  result.dataset.result = "running";
  result.replaceChildren(h("p", {}, "Fetching the validator set…"));
  let chain;
  try {
    // The set that decides the proof's block.
    const at = Number.isInteger(doc?.header?.height) ? `?height=${doc.header.height}` : "";
    chain = await api(`chain${at}`);
  } catch (e) {
    result.dataset.result = "fail";
    result.replaceChildren(h("p", { class: "msg error" }, `Cannot fetch the validator set: ${e.message}`));
    return;
  }
  const r = await verifyStateProof(doc, { chainId: chain.chain_id, validators: chain.validators, powers: chain.powers });
  const what = r.kind === "lease" ? `lease ${r.key?.slice(0, 12)}…` : `account ${r.key?.slice(0, 12)}…`;
  let verdict;
  if (!r.ok) verdict = `FAIL: ${r.reason}`;
  else if (!r.present) {
    verdict = r.kind === "lease"
      ? `PASS: ${what} is not a live lease (never made, or ended) at height ${r.height}.`
      : `PASS: ${what} is not in the state at height ${r.height} (balance 0, seq 0).`;
  } else if (r.kind === "account") {
    verdict = `PASS: ${what} has balance ${credits(r.item.balance)} (${r.item.balance} units), seq ${r.item.seq} at height ${r.height}.`;
  } else {
    verdict = `PASS: ${what} is live at height ${r.height}.`;
  }
  result.dataset.result = r.ok ? "pass" : "fail";
  const facts = {
    "chain (this node's)": chain.chain_id,
    "validators (this node's)": `${chain.validators.length}: ${chain.validators.join(", ")}`,
  };
  if (r.ok) {
    Object.assign(facts, {
      height: r.height, block: r.header_hash, "state root": r.state_root,
      certificate: `${r.signers} of ${r.validators} validators signed`,
    });
  }
  result.replaceChildren(
    h("p", { class: `verdict ${r.ok ? "ok" : "error"}`, "data-testid": "state-proof-verdict" }, verdict),
    kv(facts),
    r.ok && r.present && r.kind === "lease"
      ? h("details", {}, h("summary", {}, "The lease"), h("pre", {}, JSON.stringify(r.item, null, 1))) : "");
}

async function renderBlockList(box, before) {
  const q = before == null ? "limit=20" : `before=${before}&limit=20`;
  let list;
  try {
    const r = await api(`blocks?${q}`);
    list = Array.isArray(r) ? r : r.blocks ?? [];
  } catch (e) {
    box.replaceChildren(box.firstChild, h("p", { class: "msg error" }, `Blocks unavailable: ${e.message}`));
    return;
  }
  const rows = list.map((b) => h("tr", { "data-testid": "block-row", "data-height": b.height },
    h("th", { scope: "row" }, h("a", { href: `#/auditor/block/${b.height}` }, b.height)),
    h("td", {}, time(b.time_ms ?? b.timestamp_ms)), h("td", { class: "num" }, b.entries),
    h("td", { class: "num" }, b.tree_size), h("td", {}, short(b.hash)), h("td", {}, short(b.proposer))));
  const last = list.at(-1);
  box.replaceChildren(box.firstChild,
    table("blocks-table", ["Height", "Time", "Entries", "Tree size", "Hash", "Proposer"], rows, "no blocks"),
    h("div", { class: "row" },
      before != null ? h("button", { type: "button", onclick: () => renderBlockList(box, null) }, "Newest") : "",
      last && Number(last.height) > 0
        ? h("button", { type: "button", "data-testid": "blocks-older", onclick: () => renderBlockList(box, last.height) }, "Older blocks")
        : ""));
}

function decodedPayload(e) {
  if (e.decoded !== undefined && e.decoded !== null) return e.decoded;
  try {
    const bytes = Uint8Array.from((e.payload ?? "").match(/../g) ?? [], (x) => parseInt(x, 16));
    if (e.kind === KIND.ORDER || e.kind === "order") return decodeOrder(bytes);
    if (e.kind === KIND.CANCEL || e.kind === "cancel") return { cancels: toHex(bytes) };
  } catch {
    return null;
  }
  return null;
}

async function renderBlock(root, height) {
  const gen = app.gen;
  let b;
  try {
    b = await api(`blocks/${encodeURIComponent(height)}`);
  } catch (e) {
    if (stale(gen)) return;
    root.replaceChildren(h("p", { class: "msg error" }, `Block ${height}: ${e.message}`),
      h("a", { href: "#/auditor" }, "Back to the auditor page"));
    return;
  }
  const header = b.header ?? b;
  const sigs = b.certificate?.signatures ?? [];
  const hgt = Number(header.height);
  // Each certificate signature is checked here against the chain's validator set.
  const sigChecks = await checkCertificateSignatures(header, b.hash, b.certificate);
  if (stale(gen)) return;
  root.replaceChildren(h("div", { class: "stack", "data-testid": "block-detail" },
    h("nav", { class: "row" },
      h("a", { href: "#/auditor" }, "All blocks"),
      hgt > 0 ? h("a", { href: `#/auditor/block/${hgt - 1}` }, `← Block ${hgt - 1}`) : "",
      h("a", { href: `#/auditor/block/${hgt + 1}` }, `Block ${hgt + 1} →`)),
    section(`Block ${hgt}`, "block-header", kv({ hash: b.hash, time: time(header.timestamp_ms), ...header })),
    section("Commit certificate", "block-certificate",
      h("p", {}, `Round ${b.certificate?.round ?? "—"}; ${sigs.length} precommit signatures over the header hash.`),
      sigChecks.note ? h("p", { class: "msg" }, sigChecks.note) : "",
      table("certificate-table", ["Validator", "Key", "Signature", "Checked in this browser"], sigs.map((s, i) => h("tr", {},
        h("td", { class: "num" }, s.validator), h("td", {}, short(s.signer ?? s.key ?? "")),
        h("td", {}, short(s.signature, 16)),
        h("td", { class: sigChecks.results[i] === true ? "ok" : sigChecks.results[i] === false ? "error" : "",
          "data-testid": "signature-check" },
          sigChecks.results[i] === true ? "✔ valid precommit" : sigChecks.results[i] === false ? "✘ invalid" : "—"))),
        hgt === 0 ? "genesis has no certificate" : "none")),
    section("Entries", "block-entries", table("entries-table", ["Index", "Kind", "Author", "Id", "Payload"],
      (b.entries ?? []).map((e) => {
        const dec = decodedPayload(e);
        return h("tr", { "data-testid": "entry-row" },
          h("td", { class: "num" }, e.index ?? ""), h("td", {}, e.kind_name ?? (typeof e.kind === "number" ? kindName(e.kind) : e.kind)),
          h("td", {}, e.author ? short(e.author) : "system"),
          h("td", {}, short(e.id), e.kind === "fill" || e.kind_code === KIND.FILL
            ? [" ", h("a", { href: `#/auditor/verify/${e.id}` }, "verify lease")] : ""),
          h("td", {}, dec ? h("details", {}, h("summary", {}, "decoded"), h("pre", {}, JSON.stringify(dec, null, 1)))
            : h("code", { class: "hex" }, (e.payload ?? "").slice(0, 64))));
      }), "no entries"))));
}

async function checkCertificateSignatures(header, hash, cert) {
  const sigs = cert?.signatures ?? [];
  if (!sigs.length) return { results: [] };
  try {
    // The set that decides this height (a set change puts a new one in force).
    const chain = await api(`chain?height=${header.height}`);
    if (headerHash(header) && toHex(headerHash(header)) !== hash) {
      return { results: sigs.map(() => false), note: "The header does not hash to the block hash the node gave." };
    }
    const msg = voteBytes(header.chain_id, header.height, cert.round, PRECOMMIT, headerHash(header));
    // A validator counts once, and only an index inside the set counts (as in the ledger's check).
    const seen = new Set();
    const results = await Promise.all(sigs.map((s) => {
      const key = Number.isInteger(s.validator) ? chain.validators[s.validator] : undefined;
      if (!key || seen.has(s.validator)) return false;
      seen.add(s.validator);
      return verifyZip215(fromHex(key), msg, fromHex(s.signature));
    }));
    const valid = results.filter(Boolean).length;
    const power = sigs.reduce((t, s, i) => t + (results[i] ? Number(chain.powers?.[s.validator] ?? 1) : 0), 0);
    const needed = chain.quorum ?? quorumOf(chain.validators.length);
    return { results, note: `${valid} valid, voting power ${power} of a quorum of ${needed} needed (${chain.validators.length} validators with power ${chain.total_power ?? chain.validators.length} in the set of height ${header.height}, as this node lists them).` };
  } catch (e) {
    return { results: [], note: `Signatures not checked: ${e.message}` };
  }
}

async function runVerify(lease, result) {
  if (!/^[0-9a-f]{64}$/.test(lease)) {
    result.dataset.result = "fail";
    result.replaceChildren(h("p", { class: "msg error" }, "A lease id is 64 hex digits."));
    return;
  }
  result.dataset.result = "running";
  result.replaceChildren(h("p", {}, "Fetching the proof and the validator set…"));
  let bundle;
  let chain;
  try {
    bundle = await api(`leases/${lease}/proof`);
    // The set that decides the proof's block.
    const at = Number.isInteger(bundle?.header?.height) ? `?height=${bundle.header.height}` : "";
    chain = await api(`chain${at}`);
  } catch (e) {
    result.dataset.result = "fail";
    result.replaceChildren(h("p", { class: "msg error" }, `Cannot fetch what to verify: ${e.message}`));
    return;
  }
  const r = await verifyBundle(bundle, { validators: chain.validators, powers: chain.powers, leaseId: lease });
  // The pinned genesis: a node of another chain fails here, whatever its proofs say.
  let genesis = null;
  try {
    genesis = await nodeGenesis();
  } catch {
    genesis = null;
  }
  const pin = genesisPin();
  if (pin) {
    const same = genesis?.hash === pin;
    r.checks.push({ name: "genesis", ok: same, detail: same ? `the node's genesis is the pinned ${pin}`
      : `the node's genesis is ${genesis?.hash ?? "unknown"}, not the pinned ${pin}: another chain` });
    r.ok = r.ok && same;
  }
  const signers = new Set((bundle.certificate?.signatures ?? []).map((x) => Number(x.validator)));
  let entryText = "";
  try {
    const e = decodeEntry(Uint8Array.from(bundle.entry.match(/../g), (x) => parseInt(x, 16)));
    entryText = `${kindName(e.kind)} entry ${bundle.entry_index} in block ${bundle.entry_height}`;
  } catch {
    entryText = "";
  }
  result.dataset.result = r.ok ? "pass" : "fail";
  result.replaceChildren(
    h("p", { class: `verdict ${r.ok ? "ok" : "error"}`, "data-testid": "verify-verdict" },
      r.ok ? `PASS: lease ${lease.slice(0, 12)}… is in the ledger (${entryText}), certified by validators holding voting power ${chain.quorum ?? "a quorum"} of ${chain.total_power ?? chain.validators.length} or more.`
        : "FAIL: the proof does not hold; see the failed check below."),
    h("ul", { class: "checks" }, r.checks.map((c) =>
      h("li", { class: c.ok ? "ok" : "error", "data-check": c.name, "data-ok": c.ok ? "true" : "false" },
        h("strong", {}, `${c.ok ? "✔" : "✘"} ${c.name}: `), c.detail))),
    h("h3", {}, `The validator set in force at height ${bundle.header?.height}`),
    h("p", {}, `As this node derives it from genesis ${genesis ? genesis.hash : "(unknown)"} and the set changes its ledger enacted (the list below, under Validators and governance)${pin ? "; the genesis is checked against your pin" : "; pin the genesis hash above to check it"}.`),
    table("verify-validators", ["#", "Validator key", "Power", "Signed this block"],
      chain.validators.map((k, i) => h("tr", { "data-testid": "verify-validator", "data-signed": signers.has(i) ? "true" : "false" },
        h("td", { class: "num" }, i), h("td", {}, h("code", { class: "hex wrap" }, k)),
        h("td", { class: "num" }, chain.powers?.[i] ?? 1), h("td", {}, signers.has(i) ? "yes" : "no")))),
    h("details", {}, h("summary", {}, "The proof bundle"), h("pre", {}, JSON.stringify(bundle, null, 1))));
}

// ---------------------------------------------------------------------------------------------
// Routing

const ROUTES = { buyer: renderBuyer, operator: renderOperator, auditor: renderAuditor };

// Each navigation starts a new generation; a render still awaiting something from an earlier
// one must not touch the page, its timers or its event stream.
const stale = (gen) => gen !== app.gen;

async function route() {
  app.gen = (app.gen ?? 0) + 1;
  clearTimers();
  app.route = location.hash || "#/buyer";
  const [page, ...rest] = app.route.replace(/^#\/?/, "").split("?")[0].split("/");
  const name = ROUTES[page] ? page : "buyer";
  for (const a of document.querySelectorAll("nav.main a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const titles = { buyer: "Markets and bids", operator: "Operator", auditor: "Auditor" };
  const sub = rest[0] === "block" ? `Block ${rest[1]} · ` : rest[0] === "verify" ? "Verify a lease · " : "";
  document.title = `${sub}${titles[name]} · Surplus`;
  const root = document.getElementById("app");
  root.dataset.page = name;
  root.replaceChildren(h("p", {}, "Loading…"));
  try {
    await ROUTES[name](root, rest);
  } catch (e) {
    root.replaceChildren(h("p", { class: "msg error" }, `This page failed: ${e.message}`));
  }
  root.dataset.ready = "true";
}

// After a navigation (not the first load), focus moves to the new page for keyboard users.
async function navigate() {
  await route();
  document.getElementById("app").focus({ preventScroll: true });
}

async function start() {
  try {
    app.key = await KeyPair.load();
  } catch (e) {
    app.key = null;
    KeyPair.forget();
    document.getElementById("app").before(h("p", { class: "msg error" }, e.message));
  }
  await refreshStatus();
  setInterval(refreshStatus, 2000);
  window.addEventListener("hashchange", navigate);
  // A key created, imported or forgotten in another tab: this tab follows at once (a
  // forgotten key must not keep signing here).
  window.addEventListener("storage", async (ev) => {
    if (ev.key !== null && ev.key !== STORAGE_KEY) return;
    try {
      app.key = await KeyPair.load();
    } catch {
      app.key = null;
    }
    if (app.events) app.events.close();
    app.events = null;
    await route();
  });
  await route();
}

start();
