import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { fromHex, toHex } from "../encoding.js";
import { openSealed, x25519OfSeed } from "../sealed.js";

// docs/contracts.md §6: the token of contracts-v1.json sealed to its buyer by the Rust code.
const v = JSON.parse(
  readFileSync(new URL("../../../docs/vectors/contracts-v1.json", import.meta.url), "utf8"),
).sealed_credential;
const subtle = webcrypto.subtle;
const seed = fromHex(v.buyer_seed, 32, "seed");

test("the buyer's X25519 public key is the one of the vector", async () => {
  const { publicKey } = await x25519OfSeed(seed, subtle);
  assert.equal(toHex(publicKey), v.buyer_x25519_public);
});

test("the buyer opens the vector's sealed credential to its token", async () => {
  const token = await openSealed(v.sealed, seed, v.chain_id, v.lease, subtle);
  assert.equal(toHex(token), v.token);
});

test("another key, lease or chain, or a changed byte, does not open it", async () => {
  const other = fromHex("07".repeat(32), 32, "seed");
  await assert.rejects(openSealed(v.sealed, other, v.chain_id, v.lease, subtle), /does not open/);
  await assert.rejects(openSealed(v.sealed, seed, v.chain_id + "x", v.lease, subtle), /does not open/);
  await assert.rejects(openSealed(v.sealed, seed, v.chain_id, "00".repeat(32), subtle), /does not open/);
  const flipped = v.sealed.slice(0, 100) + (v.sealed[100] === "0" ? "1" : "0") + v.sealed.slice(101);
  await assert.rejects(openSealed(flipped, seed, v.chain_id, v.lease, subtle), /does not open/);
  await assert.rejects(openSealed(v.sealed.slice(0, 60), seed, v.chain_id, v.lease, subtle), /bytes, not/);
});
