// Reproduces the Surplus order test vectors (docs/vectors/order-v1.json) from docs/orders.md,
// with WebCrypto (Ed25519) and BLAKE3 from @noble/hashes: the same code runs in a browser.
//
// For each vector: rebuilds the payload from the order's fields, the signing bytes, verifies the
// signature under the author's raw public key, re-signs with the author's seed (imported as
// PKCS#8; Ed25519 is deterministic, so the signature must be identical), rebuilds the entry and
// its id.
//
// Node.js (20.19 or later, for @noble/hashes 2; Ed25519 needs no flag):
//   npm install --prefix DIR @noble/hashes
//   NODE_PATH=DIR/node_modules node docs/scripts/order_vector.mjs [docs/vectors/order-v1.json]
// (ES modules ignore NODE_PATH; this script looks there itself when the bare import fails.)
//
// Browser (WebCrypto with Ed25519): serve the repository, map "@noble/hashes/" to the package
// folder in an import map, then
//   import { checkVectors } from "./docs/scripts/order_vector.mjs";
//   import { blake3 } from "@noble/hashes/blake3.js";
//   const doc = await (await fetch("docs/vectors/order-v1.json")).json();
//   const { passed, failed } = await checkVectors(doc, blake3, console.log);

const KIND_ORDER = 16;
const KIND_CANCEL = 17;
const SIDE = { offer: 1, bid: 2 };
const FILL_ALL_OR_NONE = 1;
const FILL_AT_LEAST = 2;
const ED25519 = { name: "Ed25519" };
// PKCS#8 wrapping of a 32-byte Ed25519 seed (RFC 8410): this prefix, then the seed.
const PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
  0x04, 0x22, 0x04, 0x20];

const utf8 = (s) => new TextEncoder().encode(s);

function fromHex(s) {
  if (typeof s !== "string" || !/^([0-9a-f]{2})*$/.test(s)) throw new Error(`not hex: ${s}`);
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function int(bytes, value, max) {
  const v = BigInt(value); // u64 fields are decimal strings in the JSON
  if (v < 0n || v > max) throw new Error(`${value} does not fit in ${bytes * 8} bits`);
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  if (bytes === 8) view.setBigUint64(0, v);
  else if (bytes === 4) view.setUint32(0, Number(v));
  else if (bytes === 2) view.setUint16(0, Number(v));
  else view.setUint8(0, Number(v));
  return out;
}

const u8 = (v) => int(1, v, 0xffn);
const u16 = (v) => int(2, v, 0xffffn);
const u32 = (v) => int(4, v, 0xffffffffn);
const u64 = (v) => int(8, v, 0xffffffffffffffffn);

function short(b) {
  if (b.length > 255) throw new Error("short() takes at most 255 bytes");
  return concat(u8(b.length), b);
}

const vari = (b) => concat(u32(b.length), b);
const tag = (t) => short(utf8(t));

/** The canonical payload of an order entry (docs/orders.md, section 2). */
export function orderPayload(o) {
  const at = o.market.indexOf("@");
  if (at < 0) throw new Error(`market ${o.market} is not class@region`);
  const side = SIDE[o.side];
  if (side === undefined) throw new Error(`unknown side ${o.side}`);
  const parts = [u8(side), short(utf8(o.market.slice(0, at))), short(utf8(o.market.slice(at + 1))),
    u32(o.slots), u64(o.side === "offer" ? o.reserve : o.limit), u64(o.expiry_ms), u64(o.nonce)];
  if (o.side === "offer") {
    parts.push(u64(o.from_ms), u64(o.until_ms), u32(o.min_hours));
  } else {
    parts.push(u32(o.hours), u64(o.earliest_ms), u64(o.latest_ms));
    if (o.fill === "all_or_none") parts.push(u8(FILL_ALL_OR_NONE));
    else parts.push(u8(FILL_AT_LEAST), u32(o.fill.at_least));
  }
  return concat(...parts);
}

function payloadOf(v) {
  if (v.kind === KIND_ORDER) return orderPayload(v.order);
  if (v.kind === KIND_CANCEL) {
    const id = fromHex(v.cancel.order);
    if (id.length !== 32) throw new Error("a cancel names a 32-byte order id");
    return id;
  }
  throw new Error(`kind ${v.kind} is not an order (16) or a cancel (17)`);
}

export const signingBytes = (chainId, kind, author, payload) =>
  concat(tag("surplus/entry/v1"), short(utf8(chainId)), u16(kind), author, vari(payload));

export const entryEncoding = (kind, author, signature, payload) =>
  concat(u16(kind), u8(1), author, signature, vari(payload));

export const entryId = (blake3, entry) => blake3(concat(tag("surplus/entry-id/v1"), entry));

/** Checks one vector; returns its mismatches (empty if it reproduces). */
export async function checkVector(doc, v, blake3) {
  const errors = [];
  const expect = (field, got) => {
    if (toHex(got) !== v[field]) {
      errors.push(`${field}: computed ${toHex(got)}, vector has ${v[field]}`);
    }
  };
  const subtle = globalThis.crypto.subtle;
  const author = fromHex(v.author);
  const payload = payloadOf(v);
  expect("payload", payload);
  const msg = signingBytes(doc.chain_id, v.kind, author, payload);
  expect("signing_bytes", msg);

  const signature = fromHex(v.signature);
  const pub = await subtle.importKey("raw", author, ED25519, false, ["verify"]);
  if (!(await subtle.verify(ED25519, pub, signature, msg))) {
    errors.push("signature: does not verify under the author's key over the signing bytes");
  }
  const key = doc.keys.find((k) => k.public === v.author);
  if (!key) {
    errors.push("author: no seed in keys[] for this public key");
  } else {
    const pkcs8 = concat(Uint8Array.from(PKCS8_PREFIX), fromHex(key.seed));
    const priv = await subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
    const resigned = new Uint8Array(await subtle.sign(ED25519, priv, msg));
    if (toHex(resigned) !== v.signature) {
      errors.push(`signature: re-signing gives ${toHex(resigned)}, vector has ${v.signature}`);
    }
  }

  const entry = entryEncoding(v.kind, author, signature, payload);
  expect("entry", entry);
  expect("id", entryId(blake3, entry));
  return errors;
}

/** Checks every vector of `doc`, reporting through `log`; returns the counts. */
export async function checkVectors(doc, blake3, log) {
  let passed = 0;
  let failed = 0;
  for (const v of doc.vectors) {
    let errors;
    try {
      errors = await checkVector(doc, v, blake3);
    } catch (e) {
      errors = [`malformed vector: ${e.message}`];
    }
    if (errors.length) {
      failed += 1;
      log(`FAIL ${v.name ?? "?"}`);
      for (const e of errors) log(`  ${e}`);
    } else {
      passed += 1;
      log(`ok   ${v.name}: id ${v.id}`);
    }
  }
  return { passed, failed };
}

async function importBlake3() {
  const spec = "@noble/hashes/blake3.js";
  try {
    return (await import(spec)).blake3;
  } catch (e) {
    if (e.code !== "ERR_MODULE_NOT_FOUND") throw e;
  }
  const { existsSync } = await import("node:fs");
  const path = await import("node:path");
  const { pathToFileURL } = await import("node:url");
  for (const dir of (process.env.NODE_PATH ?? "").split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, "@noble", "hashes", "blake3.js");
    if (existsSync(file)) return (await import(pathToFileURL(file).href)).blake3;
  }
  throw new Error(`cannot find ${spec}: npm install --prefix DIR @noble/hashes, then run with `
    + "NODE_PATH=DIR/node_modules");
}

async function main() {
  const { readFileSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  if (!globalThis.crypto?.subtle) throw new Error("this runtime has no WebCrypto (crypto.subtle)");
  const file =
    process.argv[2] ?? fileURLToPath(new URL("../vectors/order-v1.json", import.meta.url));
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    console.error(`error: cannot read ${file}: ${e.message}`);
    return 2;
  }
  const blake3 = await importBlake3();
  const { passed, failed } = await checkVectors(doc, blake3, console.log);
  if (passed + failed === 0) {
    console.error(`error: ${file} holds no vectors`);
    return 1;
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

// Run only as a Node.js program, not when a page imports the module.
async function isMain() {
  if (typeof process === "undefined" || !process.argv?.[1]) return false;
  const { realpathSync } = await import("node:fs");
  const { pathToFileURL } = await import("node:url");
  return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
}

if (await isMain()) {
  process.exitCode = await main().catch((e) => {
    console.error(`error: ${e.message}`);
    return 2;
  });
}
