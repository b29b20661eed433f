import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { testing, verifyStrict, verifyZip215 } from "../ed25519.js";
import { fromHex } from "../encoding.js";
import { KeyPair } from "../keys.js";

const { add, multiply, encode, decompress, BASE, IDENTITY, L } = testing;
const le = (n) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
};
const leToInt = (b) => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
const k = (r, a, msg) =>
  leToInt(createHash("sha512").update(r).update(a).update(msg).digest()) % L;
const isIdentity = (p) => encode(p).every((b, i) => b === encode(IDENTITY)[i]);

// A torsion point of order 8: [ℓ]P for a point P whose torsion component has order 8.
function torsion8() {
  for (let y = 2n; ; y++) {
    const p = decompress(le(y), true);
    if (!p) continue;
    const t = multiply(p, L);
    if (!isIdentity(multiply(t, 4n))) return t;
  }
}
const T8 = torsion8();
const TORSION = { 2: multiply(T8, 4n), 4: multiply(T8, 2n), 8: T8 };

/** A key [a]B + keyT and its owner's signature over msg with R = [r]B + rT, s = r + k·a. */
function sign(a, r, msg, { keyT = IDENTITY, rT = IDENTITY, stretchS = false } = {}) {
  const pub = encode(add(multiply(BASE, a), keyT));
  const rBytes = encode(add(multiply(BASE, r), rT));
  let s = (r + k(rBytes, pub, msg) * a) % L;
  if (stretchS) s += L;
  const sig = new Uint8Array(64);
  sig.set(rBytes, 0);
  sig.set(le(s), 32);
  return { pub, sig };
}

const msg = new TextEncoder().encode("a vote or an entry");
const a = 0x1234567890abcdefn * 0xfedcba9876543210n;
const r = 0x0badc0ffee0ddf00dn * 0x1357924680n;

test("order vectors verify under both rules, and a flipped bit under neither", async () => {
  const doc = JSON.parse(
    readFileSync(new URL("../../../docs/vectors/order-v1.json", import.meta.url), "utf8"));
  for (const v of doc.vectors) {
    const [pub, sb, sig] = [fromHex(v.author), fromHex(v.signing_bytes), fromHex(v.signature)];
    assert.ok(await verifyStrict(pub, sb, sig), v.name);
    assert.ok(await verifyZip215(pub, sb, sig), v.name);
    sig[5] ^= 1;
    assert.equal(await verifyStrict(pub, sb, sig), false);
    assert.equal(await verifyZip215(pub, sb, sig), false);
  }
});

test("both rules accept what WebCrypto signs", async () => {
  for (let i = 0; i < 3; i++) {
    const key = await KeyPair.generate();
    const sig = await key.sign(msg);
    assert.ok(await verifyStrict(key.publicKey, msg, sig));
    assert.ok(await verifyZip215(key.publicKey, msg, sig));
    assert.equal(await verifyStrict(key.publicKey, msg.slice(1), sig), false);
  }
});

test("an honest signature made here verifies; s + ℓ is refused by both rules", async () => {
  const good = sign(a, r, msg);
  assert.ok(await verifyStrict(good.pub, msg, good.sig));
  assert.ok(await verifyZip215(good.pub, msg, good.sig));
  const stretched = sign(a, r, msg, { stretchS: true });
  assert.equal(await verifyStrict(stretched.pub, msg, stretched.sig), false);
  assert.equal(await verifyZip215(stretched.pub, msg, stretched.sig), false);
});

for (const order of [2, 4, 8]) {
  test(`R with a torsion component of order ${order}: strict refuses, ZIP-215 accepts`, async () => {
    const t = sign(a, r, msg, { rT: TORSION[order] });
    assert.equal(await verifyStrict(t.pub, msg, t.sig), false);
    assert.ok(await verifyZip215(t.pub, msg, t.sig));
  });
  test(`a key with a torsion component of order ${order}: the equations decide`, async () => {
    // Strict holds exactly when R's torsion is −k·(key's torsion); ZIP-215 always holds.
    let strictSeen = [false, false];
    for (let i = 0n; i < 24n; i++) {
      const pub = encode(add(multiply(BASE, a), TORSION[order]));
      const rb = encode(multiply(BASE, r + i));
      const kk = k(rb, pub, msg);
      // R = [r+i]B − [k₀]T, k₀ taken without the torsion: the equation holds when k ≡ k₀ (mod the order).
      const rPoint = add(multiply(BASE, r + i), multiply(TORSION[order], (8n - (kk % 8n)) % 8n));
      const rBytes = encode(rPoint);
      const s = (r + i + k(rBytes, pub, msg) * a) % L;
      const sig = new Uint8Array(64);
      sig.set(rBytes, 0);
      sig.set(le(s), 32);
      const strict = await verifyStrict(pub, msg, sig);
      strictSeen[strict ? 1 : 0] = true;
      assert.ok(await verifyZip215(pub, msg, sig));
    }
    assert.deepEqual(strictSeen, [true, true], "strict both accepted and refused");
  });
}

test("small-order keys and R: strict refuses, ZIP-215 follows its equation", async () => {
  const identity = encode(IDENTITY);
  const sig = new Uint8Array(64);
  sig.set(identity, 0); // R = identity, s = 0: [8](0·B − R − k·A) = 0 for A = identity
  assert.equal(await verifyStrict(identity, msg, sig), false);
  assert.ok(await verifyZip215(identity, msg, sig));
  const good = sign(a, r, msg);
  const smallR = new Uint8Array(good.sig);
  smallR.set(encode(TORSION[4]), 0);
  assert.equal(await verifyStrict(good.pub, msg, smallR), false);
});

test("non-canonical encodings: strict refuses them, ZIP-215 reduces y mod p", async () => {
  // y = p + 1 encodes the identity's y non-canonically.
  const nonCanonical = le(2n ** 255n - 19n + 1n);
  const sig = new Uint8Array(64);
  sig.set(nonCanonical, 0);
  assert.equal(await verifyStrict(nonCanonical, msg, sig), false);
  assert.ok(await verifyZip215(nonCanonical, msg, sig));
  // A point with x = 0 and the sign bit set (y = 1, sign 1): ZIP-215 accepts the encoding.
  const signed = encode(IDENTITY);
  signed[31] |= 0x80;
  assert.ok(decompress(signed, false));
  assert.equal(decompress(signed, true), null);
});
