// Verifies an inclusion proof bundle (ledger/src/bundle.rs ProofBundle, format
// "surplus-inclusion-proof/v1") in the browser, as `ProofBundle::verify` does in Rust:
//   1. the entry decodes;
//   2. the audit path leads from the entry's leaf hash to the checkpoint's Merkle root
//      (RFC 9162 section 2.1.3.2, with the ledger's blake3 leaf/node hashing);
//   3. the header hashes to the checkpoint's header hash and agrees on root, size, height, chain;
//   4. the checkpoint's node signature verifies under the strict rule (when the bundle carries
//      one);
//   5. the commit certificate holds a quorum of precommit signatures from the validators, valid
//      under ZIP-215, over vote_bytes(chain, height, round, precommit, header hash) (when
//      validators are given).
// Signatures are checked by ./ed25519.js under the rules of docs/ledger-format.md section 2, not
// by WebCrypto, whose rule is neither of them.
// Each step is reported, so a person sees what was checked and which check failed.

import {
  checkpointSigningBytes, decodeEntry, entryId, fromHex, headerHash, kindName, leafHash, nodeHash,
  PRECOMMIT, toHex, voteBytes,
} from "./encoding.js";
import { verifyStrict, verifyZip215 } from "./ed25519.js";

/** The bundle format this module reads. */
export const FORMAT = "surplus-inclusion-proof/v1";

const bitLen = (x) => (x === 0n ? 0 : x.toString(2).length);

/** RFC 9162 inclusion check; returns the computed root or throws with the reason. */
export function inclusionRoot(leaf, index, size, path) {
  index = BigInt(index);
  size = BigInt(size);
  if (index >= size) throw new Error(`index ${index} is not below the tree size ${size}`);
  const inner = bitLen(index ^ (size - 1n));
  let border = 0;
  for (let x = index >> BigInt(inner); x > 0n; x >>= 1n) border += Number(x & 1n);
  if (path.length !== inner + border) {
    throw new Error(`the proof has ${path.length} hashes, ${inner + border} expected`);
  }
  let h = leaf;
  for (let i = 0; i < inner; i++) {
    h = ((index >> BigInt(i)) & 1n) === 0n ? nodeHash(h, path[i]) : nodeHash(path[i], h);
  }
  for (let i = inner; i < path.length; i++) h = nodeHash(path[i], h);
  return h;
}

/** Quorum of a validator set of total voting power `n`: more than two thirds. */
export const quorumOf = (n) => Math.floor((n * 2) / 3) + 1;

/**
 * Verifies `bundle` (parsed JSON). Options: `validators` (hex keys, in validator-set order) to
 * check the certificate, with `powers` (their voting powers; all 1 if absent); `expectedSigner` (hex) to require the checkpoint's signer; `leaseId`
 * (hex) to require that the entry is the fill whose id is this lease id.
 * Returns {ok, checks: [{name, ok, detail}], entry, entryId}; never throws on bad input.
 */
export async function verifyBundle(bundle, { validators, powers, expectedSigner, leaseId } = {}) {
  const checks = [];
  const check = (name, ok, detail) => {
    checks.push({ name, ok, detail });
    return ok;
  };
  const done = (extra = {}) => ({ ok: checks.every((c) => c.ok), checks, ...extra });
  let entryBytes;
  let entry;
  try {
    if (bundle?.format !== FORMAT) throw new Error(`format is ${bundle?.format}, expected ${FORMAT}`);
    entryBytes = fromHex(bundle.entry, undefined, "entry");
    entry = decodeEntry(entryBytes);
    check("entry", true, `a ${kindName(entry.kind)} entry (kind ${entry.kind}), index ${bundle.entry_index}, block ${bundle.entry_height}`);
  } catch (e) {
    check("entry", false, e.message);
    return done();
  }
  const id = toHex(entryId(entryBytes));
  if (leaseId !== undefined) {
    check("lease", id === leaseId.toLowerCase(),
      id === leaseId.toLowerCase() ? `the entry's id is the lease id ${id}`
        : `the entry's id ${id} is not the lease id ${leaseId}`);
  }
  const cp = bundle.checkpoint ?? {};
  try {
    if (String(cp.tree_size) !== String(bundle.tree_size)) {
      throw new Error(`the proof is for tree size ${bundle.tree_size}, the checkpoint for ${cp.tree_size}`);
    }
    const path = bundle.path.map((p, i) => fromHex(p, 32, `proof hash ${i}`));
    const root = inclusionRoot(leafHash(entryBytes), bundle.entry_index, bundle.tree_size, path);
    const ok = toHex(root) === String(cp.root).toLowerCase();
    check("inclusion", ok, ok
      ? `${path.length} hashes lead from the entry to the Merkle root ${cp.root} of ${cp.tree_size} entries`
      : `the path leads to ${toHex(root)}, not to the checkpoint's root ${cp.root}`);
  } catch (e) {
    check("inclusion", false, e.message);
  }
  const h = bundle.header ?? {};
  let hh;
  try {
    hh = toHex(headerHash(h));
    const problems = [];
    if (hh !== cp.header_hash) problems.push(`the header hashes to ${hh}, the checkpoint names ${cp.header_hash}`);
    if (h.merkle_root !== cp.root) problems.push("the header's Merkle root differs");
    if (String(h.tree_size) !== String(cp.tree_size)) problems.push("the header's tree size differs");
    if (String(h.height) !== String(cp.height)) problems.push("the header's height differs");
    if (h.chain_id !== cp.chain_id) problems.push("the header's chain differs");
    check("header", problems.length === 0, problems.length
      ? problems.join("; ")
      : `block ${h.height} of chain ${h.chain_id} hashes to ${hh}, as the checkpoint says`);
  } catch (e) {
    check("header", false, e.message);
  }
  if (bundle.signer != null || bundle.signature != null) {
    try {
      const ok = await verifyStrict(fromHex(bundle.signer, 32, "signer"),
        checkpointSigningBytes(cp), fromHex(bundle.signature, 64, "signature"));
      check("checkpoint signature", ok, ok ? `signed by node ${bundle.signer}`
        : `the signature does not verify under ${bundle.signer}`);
    } catch (e) {
      check("checkpoint signature", false, e.message);
    }
  } else {
    check("checkpoint signature", expectedSigner === undefined, "the checkpoint is not signed");
  }
  if (expectedSigner !== undefined && bundle.signer !== expectedSigner) {
    check("signer", false, `the checkpoint is not signed by ${expectedSigner}`);
  }
  if (validators) {
    await checkCertificate(h, hh, bundle.certificate, validators, check, powers);
  }
  return done({ entry, entryId: id });
}

/**
 * Checks that `cert` decides the header `h` (hashing to the hex `hh`) for `validators` (hex keys,
 * in validator-set order) with voting `powers` (all 1 if absent): indices strictly increasing
 * and inside the set, signers holding more than two thirds of the total power, each precommit
 * valid under ZIP-215. Reports one "certificate" check through `check(name, ok, detail)`; never
 * throws. Also used by ./stateproof.js.
 */
export async function checkCertificate(h, hh, cert, validators, check, powers) {
  try {
    if (!hh) throw new Error("no header hash to check the certificate against");
    const sigs = cert?.signatures ?? [];
    if (Number(h.height) === 0) {
      const ok = sigs.length === 0 && Number(cert?.round ?? 0) === 0;
      check("certificate", ok, ok ? "genesis: no certificate needed" : "genesis carries a certificate");
      return;
    }
    const power = (i) => (powers ? Number(powers[i]) : 1);
    if (powers && (!Array.isArray(powers) || powers.length !== validators.length)) {
      throw new Error(`${validators.length} validators but ${powers.length} voting powers`);
    }
    const total = validators.reduce((t, _v, i) => t + power(i), 0);
    const need = quorumOf(total);
    let prev = -1;
    for (const [i, s] of sigs.entries()) {
      if (s.validator <= prev) throw new Error(`signature ${i} repeats or reorders validator ${s.validator}`);
      if (s.validator >= validators.length) {
        throw new Error(`signature ${i} names validator ${s.validator}, the set has ${validators.length}`);
      }
      prev = s.validator;
    }
    const signed = sigs.reduce((t, s) => t + power(s.validator), 0);
    if (signed < need) {
      throw new Error(powers
        ? `signatures hold voting power ${signed}, a quorum of ${need} is needed`
        : `${sigs.length} signatures, a quorum of ${need} is needed`);
    }
    const msg = voteBytes(h.chain_id, h.height, cert.round, PRECOMMIT, fromHex(hh, 32));
    for (const [i, s] of sigs.entries()) {
      const key = validators[s.validator];
      const ok = await verifyZip215(fromHex(key, 32, "validator key"), msg,
        fromHex(s.signature, 64, "certificate signature"));
      if (!ok) throw new Error(`signature ${i} (validator ${s.validator}, ${key}) is invalid`);
    }
    check("certificate", true, powers
      ? `${sigs.length} of ${validators.length} validators (power ${signed} of ${total}) signed the header in round ${cert.round} (quorum ${need})`
      : `${sigs.length} of ${validators.length} validators signed the header in round ${cert.round} (quorum ${need})`);
  } catch (e) {
    check("certificate", false, e.message);
  }
}
