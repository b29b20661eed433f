import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  challengeBytes, decodeEntry, decodeOrder, encodeCancel, encodeEntry, encodeOrder, entryId,
  formatCredits, fromHex, parseCredits, signingBytes, toHex, Writer,
} from "../encoding.js";
import { KeyPair, verifySignature } from "../keys.js";

const doc = JSON.parse(
  readFileSync(new URL("../../../docs/vectors/order-v1.json", import.meta.url), "utf8"),
);
const seedOf = (pub) => doc.keys.find((k) => k.public === pub).seed;

for (const v of doc.vectors) {
  test(`vector ${v.name}: payload, signing bytes, signature, entry and id`, async () => {
    const payload = v.order ? encodeOrder(v.order) : encodeCancel(v.cancel.order);
    assert.equal(toHex(payload), v.payload);
    if (v.order) assert.deepEqual(decodeOrder(payload), v.order);
    const key = await KeyPair.fromText(seedOf(v.author));
    assert.equal(key.publicHex, v.author);
    const sb = signingBytes(doc.chain_id, v.kind, key.publicKey, payload);
    assert.equal(toHex(sb), v.signing_bytes);
    const sig = await key.sign(sb);
    assert.equal(toHex(sig), v.signature, "Ed25519 is deterministic");
    assert.ok(await verifySignature(key.publicKey, sb, sig));
    const entry = encodeEntry({ kind: v.kind, author: key.publicKey, signature: sig, payload });
    assert.equal(toHex(entry), v.entry);
    assert.equal(toHex(entryId(entry)), v.id);
    const back = decodeEntry(entry);
    assert.equal(back.kind, v.kind);
    assert.equal(toHex(back.payload), v.payload);
  });
}

test("a tampered signature does not verify", async () => {
  const v = doc.vectors[0];
  const sig = fromHex(v.signature);
  sig[0] ^= 1;
  assert.equal(await verifySignature(fromHex(v.author), fromHex(v.signing_bytes), sig), false);
});

test("key file format round-trips and generated keys sign", async () => {
  const k = await KeyPair.generate();
  const again = await KeyPair.fromText(k.toFileContents());
  assert.equal(again.publicHex, k.publicHex);
  assert.match(k.toFileContents(), /^[0-9a-f]{64}\n$/);
  const msg = new Uint8Array([1, 2, 3]);
  assert.ok(await verifySignature(k.publicKey, msg, await again.sign(msg)));
  await assert.rejects(KeyPair.fromText("not a key"), /64 hex digits/);
});

test("keys persist through a storage", async () => {
  const store = new Map();
  const storage = { setItem: (a, b) => store.set(a, b), getItem: (a) => store.get(a) ?? null,
    removeItem: (a) => store.delete(a) };
  const k = await KeyPair.generate();
  await k.save(storage);
  assert.ok(!store.values().next().value.includes(k.publicHex), "stored as a JWK, not hex");
  assert.equal((await KeyPair.load(storage)).publicHex, k.publicHex);
  KeyPair.forget(storage);
  assert.equal(await KeyPair.load(storage), null);
});

test("challenge bytes follow web/src/challenge.rs", () => {
  const b = challengeBytes("chain", "01".repeat(32), "02".repeat(32), 0x0102);
  const want = [...new TextEncoder().encode("surplus/credential-challenge/v1"), 5,
    ...new TextEncoder().encode("chain"), ...Array(32).fill(1), ...Array(32).fill(2),
    0, 0, 0, 0, 0, 0, 1, 2];
  assert.deepEqual([...b], want);
});

test("credits format and parse", () => {
  assert.equal(formatCredits(2_500_000n), "2.5");
  assert.equal(formatCredits(3_000_000), "3");
  assert.equal(parseCredits("2.5"), 2_500_000n);
  assert.equal(parseCredits("0.000001"), 1n);
  assert.throws(() => parseCredits("1.0000001"), /6 decimals/);
  assert.throws(() => encodeOrder({ side: "bid", market: "BAD", slots: 1 }), /class@region/);
});

test("a u32 field out of range is refused, never wrapped (a bid for 2^32 + 1 slots is not 1 slot)", () => {
  const w = new Writer();
  assert.throws(() => w.u32(2 ** 32 + 1), RangeError);
  assert.throws(() => w.u32(-1), RangeError);
  assert.throws(() => w.u32(1.5), RangeError);
  assert.equal(toHex(new Writer().u32(0xffffffff).finish()), "ffffffff");
});

test("public keys are derived from seeds as RFC 8032 says (its test 1 and test 2)", async () => {
  const { publicFromSeed } = await import("../keys.js");
  const cases = [
    ["9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
      "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"],
    ["4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
      "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"],
  ];
  for (const [seed, pub] of cases) {
    assert.equal(toHex(await publicFromSeed(fromHex(seed, 32))), pub);
  }
});

test("lease transitions encode as the contracts vectors do", async () => {
  const { readFileSync } = await import("node:fs");
  const { encodeLeaseTransition, toHex } = await import("../encoding.js");
  const v = JSON.parse(readFileSync(new URL("../../../docs/vectors/contracts-v1.json", import.meta.url), "utf8"));
  const found = v.transactions.filter((t) => t.kind === 33);
  assert.equal(found.length, 2);
  for (const t of found) {
    const action = t.tx.type;
    assert.equal(toHex(encodeLeaseTransition({ action, lease: t.tx.lease, seq: BigInt(t.tx.seq), hours: t.tx.hours })),
      t.payload, action);
  }
  assert.throws(() => encodeLeaseTransition({ action: "extend", lease: "00".repeat(32), seq: 0n }));
});
