import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  decodeProof, keyHash, STATE_PROOF_FORMAT, valueHash, verifyProof, verifyStateProof,
} from "../stateproof.js";
import { createPrivateKey, createPublicKey, sign } from "node:crypto";
import { fromHex, headerHash, PRECOMMIT, toHex, voteBytes } from "../encoding.js";

// docs/contracts.md §5: items, roots and proofs written by the Rust implementation.
const vectors = JSON.parse(
  readFileSync(new URL("../../../docs/vectors/state-root-v2.json", import.meta.url), "utf8"),
);
// Written by web/tests/it/ui_fixture.rs from a real small ledger: a certified header.
const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/proof-bundle.json", import.meta.url), "utf8"),
);
const state = vectors.states.find((s) => s.proofs);
const flipHex = (h, at = 0) =>
  h.slice(0, at) + ((parseInt(h[at], 16) ^ 1).toString(16)) + h.slice(at + 1);

test("keyHash agrees with every item's key_hash", () => {
  let n = 0;
  for (const s of vectors.states) {
    for (const item of s.items) {
      assert.equal(toHex(keyHash(item.kind, item.key)), item.key_hash, `${item.kind} ${item.key}`);
      assert.equal(toHex(keyHash(Number(item.kind_number), item.key)), item.key_hash);
      assert.equal(toHex(valueHash(item.value)), item.value_hash);
      n++;
    }
  }
  assert.ok(n > 20);
});

test("every vector proof verifies; inclusion and exclusion both occur", () => {
  const seen = new Set();
  for (const p of state.proofs) {
    assert.equal(toHex(keyHash(p.kind, p.key)), p.key_hash);
    const vh = p.value === null ? null : valueHash(p.value);
    const r = verifyProof(state.root, p.key_hash, vh, p.proof);
    assert.ok(r.ok, `${p.note}: ${r.reason}`);
    seen.add(r.inclusion ? "inclusion" : decodeProof(p.proof).leaf ? "exclusion-leaf" : "exclusion-empty");
  }
  assert.deepEqual([...seen].sort(), ["exclusion-empty", "exclusion-leaf", "inclusion"]);
});

test("every single-byte flip of every proof fails", () => {
  for (const p of state.proofs) {
    const vh = p.value === null ? null : valueHash(p.value);
    for (let i = 0; i < p.proof.length; i += 2) {
      const bad = flipHex(p.proof, i);
      assert.equal(verifyProof(state.root, p.key_hash, vh, bad).ok, false, `${p.note}, byte ${i / 2}`);
    }
  }
});

test("a wrong value, a wrong root, or inclusion/exclusion swapped fails", () => {
  for (const p of state.proofs) {
    if (p.value !== null) {
      assert.equal(verifyProof(state.root, p.key_hash, valueHash(flipHex(p.value, 70)), p.proof).ok, false);
      assert.equal(verifyProof(state.root, p.key_hash, valueHash(p.value), p.proof).ok, true);
      // An inclusion proof is no exclusion proof of its own key.
      assert.equal(verifyProof(state.root, p.key_hash, null, p.proof).ok, false);
    } else {
      assert.equal(verifyProof(state.root, p.key_hash, valueHash("00"), p.proof).ok, false);
    }
    assert.equal(verifyProof(flipHex(state.root, 5), p.key_hash,
      p.value === null ? null : valueHash(p.value), p.proof).ok, false);
  }
  // Another key's inclusion proof is not an exclusion proof for an absent key.
  const incl = state.proofs.find((p) => p.value !== null);
  const absent = state.proofs.find((p) => p.value === null);
  assert.equal(verifyProof(state.root, absent.key_hash, null, incl.proof).ok, false);
});

test("an absent key's exclusion proof verifies with null", () => {
  const absent = state.proofs.filter((p) => p.value === null);
  assert.ok(absent.length >= 2);
  for (const p of absent) {
    const r = verifyProof(state.root, keyHash(p.kind, p.key), null, p.proof);
    assert.ok(r.ok && !r.inclusion, r.reason);
  }
});

test("malformed proofs are refused", () => {
  assert.deepEqual(decodeProof("000000"), { leaf: null, siblings: [] });
  for (const bad of ["", "00", "0000", "00000000", "020000", "000101", "01" + "00".repeat(65), "01" + "00".repeat(67)]) {
    assert.throws(() => decodeProof(bad), undefined, bad);
  }
  const max = "000100" + "00".repeat(256 * 32);
  assert.equal(decodeProof(max).siblings.length, 256);
  // Empty tree: the placeholder root, an exclusion proof with nothing in it.
  const placeholder = toHex(new TextEncoder().encode("SPARSE_MERKLE_PLACEHOLDER_HASH__"));
  assert.ok(verifyProof(placeholder, "11".repeat(32), null, "000000").ok);
});

// ---------------------------------------------------------------------------------------------
// Whole documents. There is no fixture of a full state proof (it needs the Rust node); these
// documents pair the vector proofs with headers: (a) a header carrying the vector state's root,
// whose certificate check is injected; (b) the certified fixture header, whose real certificate
// verifies but whose state root is not the vector root, so the proof step must fail; (c) a header
// carrying the vector root with a certificate signed here, by four test validators (node's
// Ed25519; its signatures are RFC 8032 ones, which ZIP-215 accepts), checked for real.

const CHAIN = "contracts-test";
const VALIDATORS = ["aa".repeat(32), "bb".repeat(32), "cc".repeat(32)];
const accountProof = state.proofs.find((p) => p.kind === "account" && p.value !== null);
const leaseProof = state.proofs.find((p) => p.kind === "lease" && p.value !== null);
const absentAccount = state.proofs.find((p) => p.kind === "account" && p.value === null);
const absentLease = state.proofs.find((p) => p.kind === "lease" && p.value === null);

function doc(p, { header, certificate, decoded } = {}) {
  const h = header ?? {
    version: 1, chain_id: CHAIN, height: 3, prev_hash: "11".repeat(32), timestamp_ms: 1767231000000,
    tree_size: 20, merkle_root: "22".repeat(32), state_root: state.root, proposer: VALIDATORS[0],
  };
  let dec = decoded;
  if (dec === undefined && p.value !== null) {
    const v = p.value;
    dec = p.kind === "account"
      ? { balance: Number(BigInt(`0x${v.slice(64, 80)}`)), seq: Number(BigInt(`0x${v.slice(80, 96)}`)) }
      : { id: p.key };
  }
  return {
    format: STATE_PROOF_FORMAT, chain_id: h.chain_id, kind: p.kind, key: p.key, key_hash: p.key_hash,
    value: p.value, decoded: dec ?? null, proof: p.proof, header: h, header_hash: toHex(headerHash(h)),
    certificate: certificate ?? { round: 0, signatures: [] },
  };
}
const calls = [];
const trustAll = async (h, hh, cert, validators) => {
  calls.push({ h, hh, cert, validators });
  return null;
};
const opts = { chainId: CHAIN, validators: VALIDATORS, certificateChecker: trustAll };

test("whole documents verify (certificate check injected)", async () => {
  for (const p of [accountProof, leaseProof, absentAccount, absentLease]) {
    calls.length = 0;
    const d = doc(p);
    const r = await verifyStateProof(d, opts);
    assert.ok(r.ok, `${p.note}: ${r.reason}`);
    assert.equal(r.present, p.value !== null);
    assert.equal(r.height, 3);
    assert.equal(r.state_root, state.root);
    assert.equal(r.header_hash, d.header_hash);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].hh, d.header_hash);
    assert.equal(calls[0].validators, VALIDATORS);
  }
  const r = await verifyStateProof(doc(accountProof), opts);
  assert.equal(r.kind, "account");
  assert.equal(BigInt(r.item.balance), BigInt(`0x${accountProof.value.slice(64, 80)}`));
  // Decoded amounts may come as decimal strings too.
  const d = doc(accountProof, { decoded: { balance: r.item.balance, seq: r.item.seq } });
  assert.ok((await verifyStateProof(d, opts)).ok);
});

const docTampers = {
  "format": (d) => { d.format = "surplus-state-proof/v2"; },
  "unknown field": (d) => { d.extra = 1; },
  "chain id": (d) => { d.chain_id = "other"; },
  "header chain id": (d) => { d.header.chain_id = "other"; },
  "kind": (d) => { d.kind = "order"; },
  "kind swapped": (d) => { d.kind = "lease"; },
  "key": (d) => { d.key = flipHex(d.key, 3); },
  "short key": (d) => { d.key = d.key.slice(2); },
  "key hash": (d) => { d.key_hash = flipHex(d.key_hash, 3); },
  "header height": (d) => { d.header.height += 1; },
  "header state root": (d) => { d.header.state_root = flipHex(d.header.state_root); d.header_hash = toHex(headerHash(d.header)); },
  "header hash": (d) => { d.header_hash = flipHex(d.header_hash); },
  "genesis": (d) => { d.header.height = 0; d.header_hash = toHex(headerHash(d.header)); },
  "value": (d) => { d.value = flipHex(d.value, 90); },
  "value removed": (d) => { d.value = null; d.decoded = null; },
  "proof byte": (d) => { d.proof = flipHex(d.proof, 70); },
  "proof not hex": (d) => { d.proof = "zz"; },
  "proof truncated": (d) => { d.proof = d.proof.slice(0, -2); },
  "decoded balance": (d) => { d.decoded.balance += 1; },
  "decoded seq": (d) => { d.decoded.seq += 1; },
  "decoded missing": (d) => { d.decoded = null; },
  "decoded negative": (d) => { d.decoded.balance = -1; },
};

for (const [what, tamper] of Object.entries(docTampers)) {
  test(`an account document with a tampered ${what} fails`, async () => {
    const d = structuredClone(doc(accountProof));
    tamper(d);
    const r = await verifyStateProof(d, opts);
    assert.equal(r.ok, false, what);
    assert.ok(typeof r.reason === "string" && r.reason.length > 0);
  });
}

test("lease documents: the decoded id must be the key; absent items carry no decoded", async () => {
  let r = await verifyStateProof(doc(leaseProof, { decoded: { id: "00".repeat(32) } }), opts);
  assert.equal(r.ok, false);
  assert.match(r.reason, /decoded is lease/);
  r = await verifyStateProof(doc(absentLease, { decoded: { id: absentLease.key } }), opts);
  assert.equal(r.ok, false);
  assert.match(r.reason, /absent/);
  // A lease key with the account's proof: the key hash or the proof gives it away.
  const d = doc(accountProof);
  d.kind = "lease";
  d.key_hash = toHex(keyHash("lease", d.key));
  assert.equal((await verifyStateProof(d, opts)).ok, false);
});

test("a certificate checker's refusal, or no trust anchor, fails", async () => {
  const r = await verifyStateProof(doc(accountProof),
    { ...opts, certificateChecker: async () => "2 signatures, a quorum of 3 is needed" });
  assert.equal(r.ok, false);
  assert.match(r.reason, /certificate does not decide the header: 2 signatures/);
  assert.equal((await verifyStateProof(doc(accountProof), { chainId: CHAIN })).ok, false);
  assert.equal((await verifyStateProof(null, opts)).ok, false);
  assert.equal((await verifyStateProof("text", opts)).ok, false);
});

// (b) The real certificate check (./verify.js's), on the fixture's certified header.
const certified = () => doc(accountProof, {
  header: structuredClone(fixture.bundle.header), certificate: structuredClone(fixture.bundle.certificate),
});
const realOpts = { chainId: fixture.bundle.header.chain_id, validators: fixture.validators };

test("the real certificate passes on a certified header, then the proof fails on its other root", async () => {
  const r = await verifyStateProof(certified(), realOpts);
  assert.equal(r.ok, false);
  assert.match(r.reason, /inclusion proof fails against the header's state root/);
  assert.equal(r.signers, fixture.bundle.certificate.signatures.length);
  assert.equal(r.validators, fixture.validators.length);
});

const certTampers = {
  "signature": (d) => { d.certificate.signatures[0].signature = flipHex(d.certificate.signatures[0].signature, 4); },
  "below quorum": (d) => { d.certificate.signatures.splice(0, 2); },
  "repeated signer": (d) => { d.certificate.signatures[1] = { ...d.certificate.signatures[0] }; },
  "round": (d) => { d.certificate.round += 1; },
  "header (re-hashed)": (d) => { d.header.timestamp_ms += 1; d.header_hash = toHex(headerHash(d.header)); },
};
for (const [what, tamper] of Object.entries(certTampers)) {
  test(`a certified document with a tampered certificate ${what} fails at the certificate`, async () => {
    const d = certified();
    tamper(d);
    const r = await verifyStateProof(d, realOpts);
    assert.equal(r.ok, false);
    assert.match(r.reason, /certificate does not decide the header/);
  });
}

test("other validators fail the real certificate", async () => {
  const r = await verifyStateProof(certified(),
    { ...realOpts, validators: [...fixture.validators].reverse() });
  assert.equal(r.ok, false);
  assert.match(r.reason, /certificate does not decide the header/);
});

// (c) A certificate made here: validators from fixed seeds, precommits over vote_bytes.
const seeds = [1, 2, 3, 4].map((i) => new Uint8Array(32).fill(i));
const PKCS8 = fromHex("302e020100300506032b657004220420");
const signers = seeds.map((seed) => {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8, seed]), format: "der", type: "pkcs8" });
  const pub = createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32);
  return { key, pub: toHex(pub) };
});
const TEST_VALIDATORS = signers.map((s) => s.pub);

function signedDoc(p, { signWith = [0, 1, 2], round = 0, height = 3 } = {}) {
  const header = {
    version: 1, chain_id: CHAIN, height, prev_hash: "11".repeat(32), timestamp_ms: 1767231000000,
    tree_size: 20, merkle_root: "22".repeat(32), state_root: state.root, proposer: TEST_VALIDATORS[0],
  };
  const msg = voteBytes(CHAIN, height, round, PRECOMMIT, headerHash(header));
  const signatures = signWith.map((i) => ({
    validator: i, signature: toHex(sign(null, msg, signers[i].key)),
  }));
  return doc(p, { header, certificate: { round, signatures } });
}
const signedOpts = { chainId: CHAIN, validators: TEST_VALIDATORS };

test("whole documents with a real certificate verify", async () => {
  for (const p of [accountProof, leaseProof, absentAccount, absentLease]) {
    for (const signWith of [[0, 1, 2], [1, 2, 3], [0, 1, 2, 3]]) {
      const r = await verifyStateProof(signedDoc(p, { signWith }), signedOpts);
      assert.ok(r.ok, `${p.note} ${signWith}: ${r.reason}`);
      assert.equal(r.signers, signWith.length);
      assert.equal(r.validators, 4);
      assert.equal(r.present, p.value !== null);
    }
  }
});

const signedTampers = {
  "below quorum": [{ signWith: [0, 1] }, () => {}],
  "signature byte": [{}, (d) => { d.certificate.signatures[2].signature = flipHex(d.certificate.signatures[2].signature, 9); }],
  "round": [{}, (d) => { d.certificate.round = 1; }],
  "signer index": [{}, (d) => { d.certificate.signatures[2].validator = 3; }],
  "out of range signer": [{}, (d) => { d.certificate.signatures[2].validator = 4; }],
  "repeated signer": [{ signWith: [0, 1, 1] }, () => {}],
  "header (re-hashed)": [{}, (d) => { d.header.timestamp_ms += 1; d.header_hash = toHex(headerHash(d.header)); }],
  "state root (re-hashed)": [{}, (d) => { d.header.state_root = "33".repeat(32); d.header_hash = toHex(headerHash(d.header)); }],
  "value": [{}, (d) => { d.value = flipHex(d.value, 95); }],
  "decoded balance": [{}, (d) => { d.decoded.balance += 1; }],
};
for (const [what, [o, tamper]] of Object.entries(signedTampers)) {
  test(`a really certified document with a tampered ${what} fails`, async () => {
    const d = signedDoc(accountProof, o);
    tamper(d);
    const r = await verifyStateProof(d, signedOpts);
    assert.equal(r.ok, false, what);
    assert.ok(r.reason);
  });
}

test("a really certified document fails for another chain or other validators", async () => {
  const d = signedDoc(accountProof);
  assert.equal((await verifyStateProof(d, { ...signedOpts, chainId: "other" })).ok, false);
  assert.equal((await verifyStateProof(d, { ...signedOpts, validators: [...TEST_VALIDATORS].reverse() })).ok, false);
  assert.equal((await verifyStateProof(d, { ...signedOpts, validators: fixture.validators })).ok, false);
  // Genesis is refused even with a certificate.
  const g = signedDoc(accountProof, { height: 0 });
  const r = await verifyStateProof(g, signedOpts);
  assert.equal(r.ok, false);
  assert.match(r.reason, /genesis/);
});
