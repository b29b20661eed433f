// Ed25519 keys with WebCrypto: generate, import a 32-byte seed (hex, or the text of a
// `surplus key generate` file: the seed in hex and a newline), export the seed, sign and
// verify. The key is kept in localStorage as a JWK; it is never sent anywhere.

import { fromHex, toHex } from "./encoding.js";

const ALG = { name: "Ed25519" };
export const STORAGE_KEY = "surplus.key.v1";

const b64urlToBytes = (s) => {
  const b64 = s.replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

const bytesToB64url = (b) =>
  btoa(String.fromCharCode(...b)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

// The public key of a seed (RFC 8032, section 5.1.5), computed here because WebCrypto has no
// way to derive it that every browser supports: Chromium exports the public half of an
// imported private key as a JWK, Firefox refuses to import a private JWK without it.
const P = 2n ** 255n - 19n;
const L_MOD = (a) => ((a % P) + P) % P;
function powMod(b, e) {
  let r = 1n;
  b = L_MOD(b);
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
  }
  return r;
}
const inv = (a) => powMod(a, P - 2n);
const D = L_MOD(-121665n * inv(121666n));
const BASE = (() => {
  const x = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
  const y = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
  return [x, y, 1n, (x * y) % P];
})();
// Point addition in extended coordinates on -x^2 + y^2 = 1 + d x^2 y^2 (add-2008-hwcd-3).
function add([x1, y1, z1, t1], [x2, y2, z2, t2]) {
  const a = L_MOD((y1 - x1) * (y2 - x2));
  const b = L_MOD((y1 + x1) * (y2 + x2));
  const c = L_MOD(2n * D * t1 * t2);
  const d = L_MOD(2n * z1 * z2);
  const e = b - a, f = d - c, g = d + c, h = b + a;
  return [L_MOD(e * f), L_MOD(g * h), L_MOD(f * g), L_MOD(e * h)];
}

/** The Ed25519 public key (32 bytes) of a 32-byte seed. */
export async function publicFromSeed(seed) {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-512", seed));
  const a = h.slice(0, 32);
  a[0] &= 248;
  a[31] &= 127;
  a[31] |= 64;
  let scalar = 0n;
  for (let i = 31; i >= 0; i--) scalar = (scalar << 8n) | BigInt(a[i]);
  let acc = [0n, 1n, 1n, 0n];
  let q = BASE;
  for (; scalar > 0n; scalar >>= 1n) {
    if (scalar & 1n) acc = add(acc, q);
    q = add(q, q);
  }
  const zi = inv(acc[2]);
  const x = (acc[0] * zi) % P;
  let y = (acc[1] * zi) % P;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, y >>= 8n) out[i] = Number(y & 255n);
  out[31] |= Number(x & 1n) << 7;
  return out;
}

/** A key pair: `seed` and `publicKey` (bytes), `publicHex`, and CryptoKeys for WebCrypto. */
export class KeyPair {
  constructor(seed, publicKey, privateKey) {
    this.seed = seed;
    this.publicKey = publicKey;
    this.publicHex = toHex(publicKey);
    this.privateKey = privateKey;
  }

  /** A key pair from a 32-byte seed. */
  static async fromSeed(seed) {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) {
      throw new Error("an Ed25519 seed is 32 bytes");
    }
    const publicKey = await publicFromSeed(seed);
    const jwk = { kty: "OKP", crv: "Ed25519", d: bytesToB64url(seed), x: bytesToB64url(publicKey) };
    const privateKey = await crypto.subtle.importKey("jwk", jwk, ALG, true, ["sign"]);
    return new KeyPair(Uint8Array.from(seed), publicKey, privateKey);
  }

  /** A new random key pair (the seed from the browser's CSPRNG). */
  static async generate() {
    return KeyPair.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
  }

  /**
   * Imports a seed typed or pasted by a person: 64 hex digits, or the contents of a key file
   * written by `surplus key generate` (the same, with a trailing newline).
   */
  static async fromText(text) {
    const t = String(text).trim();
    if (!/^[0-9a-fA-F]{64}$/.test(t)) {
      throw new Error(
        "a key is 64 hex digits (the 32-byte seed), as in a file written by `surplus key generate`",
      );
    }
    return KeyPair.fromSeed(fromHex(t, 32, "key seed"));
  }

  /** The key file text (`surplus key generate` format): the seed in hex and a newline. */
  toFileContents() {
    return `${toHex(this.seed)}\n`;
  }

  /** Ed25519 signature (64 bytes) over `message`. */
  async sign(message) {
    return new Uint8Array(await crypto.subtle.sign(ALG, this.privateKey, message));
  }

  /** Saves the key in this browser's localStorage (as a JWK; never sent over the network). */
  async save(storage = globalThis.localStorage) {
    const jwk = await crypto.subtle.exportKey("jwk", this.privateKey);
    storage.setItem(STORAGE_KEY, JSON.stringify(jwk));
  }

  /** The saved key, or null. */
  static async load(storage = globalThis.localStorage) {
    const text = storage.getItem(STORAGE_KEY);
    if (!text) return null;
    const jwk = JSON.parse(text);
    if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.d !== "string") {
      throw new Error("the saved key is not an Ed25519 JWK; forget it and import the key again");
    }
    return KeyPair.fromSeed(b64urlToBytes(jwk.d));
  }

  /** Removes the saved key. */
  static forget(storage = globalThis.localStorage) {
    storage.removeItem(STORAGE_KEY);
  }
}

/** Verifies an Ed25519 signature with WebCrypto; false on any malformed input. */
export async function verifySignature(publicKey, message, signature) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, ALG, false, ["verify"]);
    return await crypto.subtle.verify(ALG, key, signature, message);
  } catch {
    return false;
  }
}
