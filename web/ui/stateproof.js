// Verifies a state proof document ("surplus-state-proof/v1", docs/api.md "State proofs") in the
// browser, as `StateProof::verify` (web/api/src/state_proof.rs) does in Rust:
//   1. format, chain id (the trusted one, and the header's), kind, key;
//   2. key_hash = blake3(tag("surplus/state/v2/key") ‖ kind ‖ key);
//   3. the header hashes to header_hash, and is not the genesis header;
//   4. the commit certificate holds a quorum of valid precommits of the trusted validators
//      (./verify.js does this check for the inclusion-proof bundles too);
//   5. the sparse Merkle proof (docs/contracts.md §5, "Proofs"; `Proof::verify` in
//      state/src/proof.rs) leads from the key hash and blake3(value), or from the key's absence,
//      to header.state_root;
//   6. `decoded` agrees with `value`: an account's balance and seq are the value's bytes 32..40
//      and 40..48 (big-endian) after the key, and its bond bytes 48..56 when present (else 0); a lease's value starts with its id, which is the key
//      and decoded.id. (The rest of a lease's encoding is not re-derived here; the Rust verifier
//      re-encodes the whole lease.)
// The trust anchor (chain id, validator keys) is the caller's; nothing in the document is trusted.

import { blake3, taggedHash } from "./blake3.js";
import { concat, fromHex, headerHash, toHex } from "./encoding.js";
import { checkCertificate } from "./verify.js";

/** The document format this module reads. */
export const STATE_PROOF_FORMAT = "surplus-state-proof/v1";

/** The item kinds of the state (docs/contracts.md §5), by name. */
export const STATE_KIND = {
  chain: 0,
  account: 1,
  lease: 2,
  order: 3,
  revoked: 4,
  nonce: 5,
  price: 6,
  allocation: 7,
  validator: 8,
  proposal: 9,
  rotation: 10,
  consensus: 11,
  maintenance: 12,
  tally: 13,
};

/** At most this many siblings in a proof (the tree is 256 bits deep). */
export const MAX_SIBLINGS = 256;

const KEY_TAG = "surplus/state/v2/key";
const utf8 = new TextEncoder();
const LEAF_PREFIX = utf8.encode("JMT::LeafNode");
const INTERNAL_PREFIX = utf8.encode("JMT::IntrnalNode");
/** The hash of an empty subtree and the root of the empty tree. */
export const PLACEHOLDER = utf8.encode("SPARSE_MERKLE_PLACEHOLDER_HASH__");

const bytes = (v, n, what) => (typeof v === "string" ? fromHex(v, n, what) : v);
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const bit = (key, depth) => (key[depth >> 3] & (0x80 >> (depth & 7))) !== 0;
function commonPrefixBits(a, b) {
  for (let i = 0; i < 32; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 256;
}

/**
 * blake3(tag("surplus/state/v2/key") ‖ kind:u8 ‖ key); `kind` is a number or a name ("account"),
 * `keyBytes` bytes or hex.
 */
export function keyHash(kind, keyBytes) {
  const k = typeof kind === "string" ? STATE_KIND[kind] : kind;
  if (!Number.isInteger(k) || k < 0 || k > 255) throw new Error(`unknown state item kind ${kind}`);
  return taggedHash(KEY_TAG, concat([k], bytes(keyBytes, undefined, "key")));
}

/** blake3(value): a leaf's value hash. */
export const valueHash = (value) => blake3(bytes(value, undefined, "value"));

/** blake3("JMT::LeafNode" ‖ key_hash ‖ value_hash). */
export const leafHash = (k, v) => blake3(concat(LEAF_PREFIX, k, v));

/** blake3("JMT::IntrnalNode" ‖ left ‖ right). */
export const internalHash = (l, r) => blake3(concat(INTERNAL_PREFIX, l, r));

/**
 * Decodes a proof: `0x00 ‖ n:u16 ‖ sibling × n` or `0x01 ‖ key_hash ‖ value_hash ‖ n:u16 ‖
 * sibling × n` (siblings bottom-up, n ≤ 256). Returns {leaf: [k, v] | null, siblings}; throws on
 * a bad flag, too many siblings, or an input shorter or longer than the layout.
 */
export function decodeProof(proofBytes) {
  const b = bytes(proofBytes, undefined, "proof");
  let pos = 0;
  const take = (n) => {
    if (pos + n > b.length) throw new Error(`proof encoding is truncated: needs ${pos + n} bytes, has ${b.length}`);
    const s = b.slice(pos, pos + n);
    pos += n;
    return s;
  };
  const flag = take(1)[0];
  let leaf = null;
  if (flag === 1) leaf = [take(32), take(32)];
  else if (flag !== 0) {
    throw new Error(`proof leaf flag is 0x${flag.toString(16).padStart(2, "0")}, expected 0x00 (no leaf) or 0x01 (leaf)`);
  }
  const c = take(2);
  const count = (c[0] << 8) | c[1];
  if (count > MAX_SIBLINGS) throw new Error(`proof has ${count} siblings, at most ${MAX_SIBLINGS} allowed`);
  const siblings = [];
  for (let i = 0; i < count; i++) siblings.push(take(32));
  if (pos !== b.length) throw new Error(`proof encoding has ${b.length - pos} trailing bytes`);
  return { leaf, siblings };
}

/**
 * Verifies a proof (bytes or hex) against `root` for `keyHash`: inclusion with `valueHash`, or
 * exclusion when it is null. Returns {ok: true, inclusion, depth} or {ok: false, reason}; never
 * throws.
 */
export function verifyProof(root, keyHash, valueHashOrNull, proofBytes) {
  try {
    const R = bytes(root, 32, "root");
    const k = bytes(keyHash, 32, "key hash");
    const value = valueHashOrNull == null ? null : bytes(valueHashOrNull, 32, "value hash");
    const { leaf, siblings } = decodeProof(proofBytes);
    const depth = siblings.length;
    if (value) {
      if (!leaf) throw new Error("expected an inclusion proof, found an exclusion proof with no leaf");
      if (!equal(leaf[0], k)) throw new Error(`inclusion proof is for key ${toHex(leaf[0])}, not ${toHex(k)}`);
      if (!equal(leaf[1], value)) throw new Error(`value hash in proof is ${toHex(leaf[1])}, expected ${toHex(value)}`);
    } else if (leaf) {
      if (equal(leaf[0], k)) throw new Error("expected an exclusion proof, but the key is present in the proof");
      const shared = commonPrefixBits(leaf[0], k);
      if (shared < depth) {
        throw new Error(`exclusion proof's leaf shares ${shared} leading bits with the key, fewer than the proof's depth ${depth}`);
      }
    }
    let h = leaf ? leafHash(leaf[0], leaf[1]) : PLACEHOLDER;
    for (let i = 0; i < depth; i++) {
      h = bit(k, depth - 1 - i) ? internalHash(siblings[i], h) : internalHash(h, siblings[i]);
    }
    if (!equal(h, R)) throw new Error(`proof gives root ${toHex(h)}, expected ${toHex(R)}`);
    return { ok: true, inclusion: value !== null, depth };
  } catch (e) {
    return { ok: false, reason: e.message };
  }
}

const be64 = (b, at) => {
  let x = 0n;
  for (let i = 0; i < 8; i++) x = (x << 8n) | BigInt(b[at + i]);
  return x;
};

function uint(v, what) {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "string" && /^[0-9]+$/.test(v)) return BigInt(v);
  throw new Error(`decoded ${what} is not an unsigned integer: ${JSON.stringify(v)}`);
}

/**
 * Verifies a state proof document (parsed JSON) against the trusted `chainId` and `validators`
 * (hex keys, in genesis order). `certificateChecker` (optional, for tests) replaces the
 * certificate check: async (header, headerHashHex, certificate, validators) → reason or null.
 * Returns {ok, reason, kind, key, present, item, height, header_hash, state_root, signers,
 * validators}; never throws.
 */
export async function verifyStateProof(doc, { chainId, validators, powers, certificateChecker } = {}) {
  const summary = {};
  const fail = (reason) => ({ ok: false, reason, ...summary });
  try {
    if (typeof chainId !== "string" || !Array.isArray(validators) || validators.length === 0) {
      return fail("no trust anchor: a chain id and the genesis validator keys are needed");
    }
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return fail("the document is not a JSON object");
    if (doc.format !== STATE_PROOF_FORMAT) {
      return fail(`unknown format ${JSON.stringify(doc.format)}, expected "${STATE_PROOF_FORMAT}"`);
    }
    const known = ["format", "chain_id", "kind", "key", "key_hash", "value", "decoded", "proof",
      "header", "header_hash", "certificate"];
    const extra = Object.keys(doc).filter((f) => !known.includes(f));
    if (extra.length) return fail(`unknown field ${extra.join(", ")}`);
    if (doc.chain_id !== chainId) {
      return fail(`the proof is for chain ${JSON.stringify(doc.chain_id)}, the trusted genesis is chain ${JSON.stringify(chainId)}`);
    }
    const h = doc.header;
    if (h === null || typeof h !== "object") return fail("the header is missing");
    if (h.chain_id !== doc.chain_id) {
      return fail(`the header is for chain ${JSON.stringify(h.chain_id)}, the document names ${JSON.stringify(doc.chain_id)}`);
    }
    if (doc.kind !== "account" && doc.kind !== "lease") {
      return fail(`kind ${JSON.stringify(doc.kind)} is not one this verifier knows (account, lease)`);
    }
    summary.kind = doc.kind;
    const key = fromHex(doc.key, 32, "key");
    summary.key = toHex(key);
    const k = keyHash(doc.kind, key);
    if (!equal(fromHex(doc.key_hash, 32, "key_hash"), k)) {
      return fail(`key_hash is ${doc.key_hash}, but the ${doc.kind} key ${summary.key} hashes to ${toHex(k)}`);
    }
    let hh;
    try {
      hh = toHex(headerHash(h));
    } catch (e) {
      return fail(`the header does not encode: ${e.message}`);
    }
    if (!equal(fromHex(doc.header_hash, 32, "header_hash"), fromHex(hh))) {
      return fail(`header_hash is ${doc.header_hash}, but the header hashes to ${hh}`);
    }
    summary.height = Number(h.height);
    summary.header_hash = hh;
    if (String(h.height) === "0") return fail("the header is the genesis header, which no certificate decides");
    let certProblem = null;
    if (certificateChecker) {
      certProblem = await certificateChecker(h, hh, doc.certificate, validators);
    } else {
      await checkCertificate(h, hh, doc.certificate, validators, (_name, ok, detail) => {
        if (!ok) certProblem = detail;
      }, powers);
    }
    if (certProblem) return fail(`the certificate does not decide the header: ${certProblem}`);
    summary.signers = doc.certificate?.signatures?.length ?? 0;
    summary.validators = validators.length;
    const root = fromHex(h.state_root, 32, "header.state_root");
    summary.state_root = toHex(root);
    let proofBytes;
    try {
      proofBytes = fromHex(doc.proof, undefined, "proof");
    } catch (e) {
      return fail(e.message);
    }
    try {
      decodeProof(proofBytes);
    } catch (e) {
      return fail(`proof does not decode: ${e.message}`);
    }
    const value = doc.value == null ? null : fromHex(doc.value, undefined, "value");
    const r = verifyProof(root, k, value && valueHash(value), proofBytes);
    if (!r.ok) {
      return fail(`the ${value ? "inclusion" : "exclusion"} proof fails against the header's state root: ${r.reason}`);
    }
    summary.present = value !== null;
    const d = doc.decoded;
    if (value === null) {
      if (d != null) return fail("decoded is given for an absent item (value is null)");
      summary.item = null;
      return { ok: true, reason: null, ...summary };
    }
    if (d == null) return fail("decoded is missing (value is not null)");
    if (!equal(value.subarray(0, 32), key)) {
      return fail(`the value's first 32 bytes are ${toHex(value.subarray(0, 32))}, not the key`);
    }
    if (doc.kind === "account") {
      // key ‖ balance ‖ seq, then the bond only when it is not 0 (docs/contracts.md §5).
      if (value.length !== 48 && value.length !== 56) {
        return fail(`an account's value is 48 bytes (56 with a bond), this one ${value.length}`);
      }
      const balance = be64(value, 32);
      const seq = be64(value, 40);
      const bond = value.length === 56 ? be64(value, 48) : 0n;
      if (value.length === 56 && bond === 0n) return fail("a bond of 0 is written: not the canonical encoding");
      const dBond = d?.bond === undefined ? 0n : uint(d.bond, "bond");
      if (typeof d !== "object" || uint(d.balance, "balance") !== balance || uint(d.seq, "seq") !== seq || dBond !== bond) {
        return fail("decoded does not encode to value: they disagree");
      }
      summary.item = { balance: balance.toString(), seq: seq.toString(), bond: bond.toString() };
    } else {
      if (typeof d !== "object" || typeof d.id !== "string" || d.id.toLowerCase() !== summary.key) {
        return fail(`decoded is lease ${d?.id}, the key is ${doc.key}`);
      }
      summary.item = d;
    }
    return { ok: true, reason: null, ...summary };
  } catch (e) {
    return fail(e.message);
  }
}
