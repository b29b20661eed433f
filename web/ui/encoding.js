// The ledger's canonical byte encoding in JavaScript: order and cancel payloads
// (docs/orders.md), entries, the bytes authors sign and entry ids (docs/ledger-format.md), block
// headers, checkpoints and consensus votes (ledger/src/block.rs, checkpoint.rs), and the
// credential challenge (web/src/challenge.rs). u64 values are BigInt (numbers and decimal
// strings are accepted).

import { blake3, taggedHash } from "./blake3.js";

/** Domain tags (ledger/src/encoding.rs). */
export const TAG = {
  HEADER: "surplus/header/v1",
  ENTRY_SIG: "surplus/entry/v1",
  ENTRY_ID: "surplus/entry-id/v1",
  CHECKPOINT: "surplus/checkpoint/v1",
  VOTE: "surplus/vote/v1",
  CHALLENGE: "surplus/credential-challenge/v1",
};

/** Entry kinds (ledger/src/block.rs EntryKind). */
export const KIND = {
  VALIDATORS: 1,
  GENESIS_PARAMS: 2,
  GENESIS_ALLOCATION: 3,
  VALIDATOR_SET: 4,
  ORDER: 16,
  CANCEL: 17,
  FILL: 18,
  LEASE: 32,
  LEASE_TRANSITION: 33,
  SETTLEMENT: 34,
  TRANSFER: 35,
  CREDENTIAL_GRANT: 48,
  REVOCATION: 49,
  GOV_PROPOSE: 64,
  GOV_VOTE: 65,
  GOV_WITHDRAW: 66,
  GOV_OUTCOME: 67,
  KEY_ROTATION: 68,
};

const KIND_NAMES = Object.fromEntries(
  Object.entries(KIND).map(([k, v]) => [v, k.toLowerCase().replaceAll("_", "-")]),
);

/** A human name for an entry kind ("other" for unknown kinds). */
export const kindName = (kind) => KIND_NAMES[kind] ?? "other";

const utf8 = new TextEncoder();
const U64_MAX = (1n << 64n) - 1n;

/** The byte arrays (or arrays of byte values) one after another, in a new Uint8Array. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Hex of bytes. */
export function toHex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Bytes of a hex string; `n` (optional) is the required length in bytes. */
export function fromHex(hex, n, what = "value") {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error(`${what} is not hex: ${String(hex).slice(0, 80)}`);
  }
  if (n !== undefined && hex.length !== 2 * n) {
    throw new Error(`${what} must be ${n} bytes (${2 * n} hex digits), got ${hex.length / 2}`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A u64 as BigInt from a number, decimal string or BigInt; throws when out of range. */
export function u64(v, what = "value") {
  let b;
  try {
    b = BigInt(v);
  } catch {
    throw new Error(`${what} is not an integer: ${v}`);
  }
  if (b < 0n || b > U64_MAX) throw new Error(`${what} is out of the u64 range: ${v}`);
  return b;
}

/** Appends canonical fields (big-endian integers, length-prefixed strings). */
export class Writer {
  constructor() {
    this.parts = [];
    this.len = 0;
  }
  raw(bytes) {
    this.parts.push(bytes);
    this.len += bytes.length;
    return this;
  }
  u8(v) {
    return this.raw(new Uint8Array([Number(v) & 0xff]));
  }
  u16(v) {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, Number(v));
    return this.raw(b);
  }
  u32(v) {
    const n = Number(v);
    // DataView would wrap silently: a bid for 2^32 + 1 slots must not be signed as 1 slot.
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${v} is not a u32`);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return this.raw(b);
  }
  u64(v) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, u64(v));
    return this.raw(b);
  }
  /** One-byte length then the bytes (strings are UTF-8). */
  short(v) {
    const b = typeof v === "string" ? utf8.encode(v) : v;
    if (b.length > 255) throw new Error(`a short string holds at most 255 bytes, got ${b.length}`);
    return this.u8(b.length).raw(b);
  }
  /** Four-byte length then the bytes. */
  bytes(b) {
    return this.u32(b.length).raw(b);
  }
  /** A domain tag: one-byte length then the tag. */
  tag(t) {
    return this.short(t);
  }
  finish() {
    const out = new Uint8Array(this.len);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Reads canonical fields, throwing a named error on short input. */
export class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.pos = 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n, field) {
    if (this.buf.length - this.pos < n) {
      throw new Error(`truncated: ${field} needs ${n} bytes at offset ${this.pos}`);
    }
  }
  raw(n, field) {
    this.need(n, field);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u8(field) {
    this.need(1, field);
    return this.buf[this.pos++];
  }
  u16(field) {
    this.need(2, field);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32(field) {
    this.need(4, field);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  u64(field) {
    this.need(8, field);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }
  short(field) {
    return this.raw(this.u8(field), field);
  }
  string(field) {
    return new TextDecoder("utf-8", { fatal: true }).decode(this.short(field));
  }
  bytes(field, max) {
    const n = this.u32(field);
    if (n > max) throw new Error(`${field}: length ${n} exceeds the limit ${max}`);
    return this.raw(n, field);
  }
  finish() {
    if (this.pos !== this.buf.length) {
      throw new Error(`${this.buf.length - this.pos} trailing bytes at offset ${this.pos}`);
    }
  }
}

const NAME = /^[a-z0-9._-]{1,64}$/;

/** Splits "class@region" into its parts, checking both names. */
export function parseMarket(market) {
  const [cls, region, ...rest] = String(market).split("@");
  if (rest.length || !NAME.test(cls ?? "") || !NAME.test(region ?? "")) {
    throw new Error(
      `market must be class@region with names of 1 to 64 of a-z 0-9 . _ -, got ${market}`,
    );
  }
  return { cls, region };
}

/**
 * The payload of an order (docs/orders.md section 2). `order` is in the JSON form of the vectors:
 * offers {side:"offer", market, slots, reserve, expiry_ms, nonce, from_ms, until_ms, min_hours},
 * bids {side:"bid", market, slots, limit, expiry_ms, nonce, hours, earliest_ms, latest_ms, fill}
 * with fill "all_or_none" or {at_least: m}.
 */
export function encodeOrder(order) {
  const { cls, region } = parseMarket(order.market);
  const w = new Writer();
  const offer = order.side === "offer";
  if (!offer && order.side !== "bid") throw new Error(`side must be offer or bid, got ${order.side}`);
  w.u8(offer ? 1 : 2).short(cls).short(region).u32(order.slots);
  w.u64(offer ? order.reserve : order.limit).u64(order.expiry_ms).u64(order.nonce);
  if (offer) {
    w.u64(order.from_ms).u64(order.until_ms).u32(order.min_hours);
  } else {
    w.u32(order.hours).u64(order.earliest_ms).u64(order.latest_ms);
    if (order.fill === "all_or_none") w.u8(1);
    else if (order.fill && order.fill.at_least !== undefined) w.u8(2).u32(order.fill.at_least);
    else throw new Error(`fill must be "all_or_none" or {at_least: m}, got ${JSON.stringify(order.fill)}`);
  }
  return w.finish();
}

/** Decodes an order payload into the JSON form of {@link encodeOrder} (u64 as decimal strings). */
export function decodeOrder(payload) {
  const r = new Reader(payload);
  const side = r.u8("order.side");
  if (side !== 1 && side !== 2) throw new Error(`unknown order side ${side}`);
  const cls = r.string("order.class");
  const region = r.string("order.region");
  const market = `${cls}@${region}`;
  parseMarket(market);
  const slots = r.u32("order.slots");
  const price = r.u64("order.price").toString();
  const expiry_ms = r.u64("order.expiry_ms").toString();
  const nonce = r.u64("order.nonce").toString();
  let out;
  if (side === 1) {
    out = { side: "offer", market, slots, reserve: price, expiry_ms, nonce,
      from_ms: r.u64("order.from_ms").toString(), until_ms: r.u64("order.until_ms").toString(),
      min_hours: r.u32("order.min_hours") };
  } else {
    const hours = r.u32("order.hours");
    const earliest_ms = r.u64("order.earliest_ms").toString();
    const latest_ms = r.u64("order.latest_ms").toString();
    const tag = r.u8("order.fill");
    let fill;
    if (tag === 1) fill = "all_or_none";
    else if (tag === 2) fill = { at_least: r.u32("order.fill.min_slots") };
    else throw new Error(`unknown fill tag ${tag}`);
    out = { side: "bid", market, slots, limit: price, expiry_ms, nonce, hours, earliest_ms,
      latest_ms, fill };
  }
  r.finish();
  return out;
}

/** The payload of a cancel: the 32-byte id of the order. */
export const encodeCancel = (orderId) => fromHex(orderId, 32, "order id");

/**
 * The payload of a lease transition (docs/contracts.md §4, kind 33): terminate
 * `0x01 ‖ lease ‖ seq:u64`, or renew `0x02 ‖ lease ‖ seq:u64 ‖ hours:u32`.
 */
export function encodeLeaseTransition({ action, lease, seq, hours }) {
  const w = new Writer();
  if (action === "terminate") return w.u8(1).raw(fromHex(lease, 32, "lease id")).u64(seq).finish();
  if (action === "renew") return w.u8(2).raw(fromHex(lease, 32, "lease id")).u64(seq).u32(hours).finish();
  throw new Error(`unknown lease transition ${action}`);
}

/**
 * The bytes an entry's author signs:
 * tag("surplus/entry/v1") ‖ short(chain) ‖ kind:u16 ‖ author:32 ‖ var(payload).
 */
export function signingBytes(chainId, kind, author, payload) {
  return new Writer().tag(TAG.ENTRY_SIG).short(chainId).u16(kind).raw(author).bytes(payload).finish();
}

/**
 * Canonical entry encoding (Entry::encode): kind:u16 ‖ auth ‖ var(payload), auth = 0x00 (system)
 * or 0x01 ‖ author:32 ‖ signature:64. `entry` is {kind, author?, signature?, payload} (bytes).
 */
export function encodeEntry({ kind, author, signature, payload }) {
  const w = new Writer().u16(kind);
  if (author) w.u8(1).raw(author).raw(signature);
  else w.u8(0);
  return w.bytes(payload).finish();
}

/** Decodes exactly one entry; author/signature are absent for system entries. */
export function decodeEntry(bytes) {
  const r = new Reader(bytes);
  const kind = r.u16("entry.kind");
  const auth = r.u8("entry.auth");
  const e = { kind };
  if (auth === 1) {
    e.author = r.raw(32, "entry.author");
    e.signature = r.raw(64, "entry.signature");
  } else if (auth !== 0) {
    throw new Error(`unknown entry auth tag ${auth}`);
  }
  e.payload = r.bytes("entry.payload", 64 * 1024);
  r.finish();
  return e;
}

/** The entry id: blake3(tag("surplus/entry-id/v1") ‖ entry encoding). */
export const entryId = (entryBytes) => taggedHash(TAG.ENTRY_ID, entryBytes);

/** The Merkle leaf hash of an entry encoding: blake3(0x00 ‖ entry). */
export function leafHash(data) {
  const b = new Uint8Array(data.length + 1);
  b.set(data, 1);
  return blake3(b);
}

/** A Merkle interior node: blake3(0x01 ‖ left ‖ right). */
export function nodeHash(left, right) {
  const b = new Uint8Array(65);
  b[0] = 1;
  b.set(left, 1);
  b.set(right, 33);
  return blake3(b);
}

/** Header::encode of a header in its JSON form (hashes and keys hex). */
export function encodeHeader(h) {
  return new Writer()
    .u16(h.version)
    .short(h.chain_id)
    .u64(h.height)
    .raw(fromHex(h.prev_hash, 32, "header.prev_hash"))
    .u64(h.timestamp_ms)
    .u64(h.tree_size)
    .raw(fromHex(h.merkle_root, 32, "header.merkle_root"))
    .raw(fromHex(h.state_root, 32, "header.state_root"))
    .raw(fromHex(h.proposer, 32, "header.proposer"))
    .finish();
}

/** The header hash: blake3(tag("surplus/header/v1") ‖ Header::encode). */
export const headerHash = (h) => taggedHash(TAG.HEADER, encodeHeader(h));

/** Checkpoint::signing_bytes of a checkpoint in its JSON form. */
export function checkpointSigningBytes(cp) {
  return new Writer()
    .tag(TAG.CHECKPOINT)
    .short(cp.chain_id)
    .u64(cp.height)
    .u64(cp.tree_size)
    .raw(fromHex(cp.root, 32, "checkpoint.root"))
    .raw(fromHex(cp.header_hash, 32, "checkpoint.header_hash"))
    .finish();
}

/** Precommit vote kind (ledger/src/block.rs VoteKind). */
export const PRECOMMIT = 2;

/** vote_bytes: what a validator signs; a commit certificate holds precommits for the header. */
export function voteBytes(chainId, height, round, kind, value) {
  const w = new Writer().tag(TAG.VOTE).short(chainId).u64(height).u32(round).u8(kind);
  if (value) w.u8(1).raw(value);
  else w.u8(0);
  return w.finish();
}

/**
 * The bytes a buyer signs to fetch a lease's credential (web/src/challenge.rs): the 31-byte tag
 * without a length, short(chain), lease:32, nonce:32, expires_ms:u64.
 */
export function challengeBytes(chainId, leaseHex, nonceHex, expiresMs) {
  return new Writer()
    .raw(utf8.encode(TAG.CHALLENGE))
    .short(chainId)
    .raw(fromHex(leaseHex, 32, "lease id"))
    .raw(fromHex(nonceHex, 32, "challenge"))
    .u64(expiresMs)
    .finish();
}

/** Units in one credit (docs/orders.md section 1). */
export const UNITS_PER_CREDIT = 1_000_000n;

/** Credits as text from units (BigInt or number), e.g. 2500000 → "2.5". */
export function formatCredits(units) {
  const u = BigInt(units);
  const whole = u / UNITS_PER_CREDIT;
  const frac = (u % UNITS_PER_CREDIT).toString().padStart(6, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}

/** Units from credits typed by a person ("2.5" → 2500000n); throws on more than 6 decimals. */
export function parseCredits(text) {
  const m = /^\s*(\d+)(?:\.(\d{0,6}))?\s*$/.exec(String(text));
  if (!m) throw new Error(`a price in credits looks like 2.5 (at most 6 decimals), got "${text}"`);
  return BigInt(m[1]) * UNITS_PER_CREDIT + BigInt((m[2] ?? "").padEnd(6, "0") || "0");
}
