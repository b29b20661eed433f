// Ed25519 keys with WebCrypto: generate, import a 32-byte seed (hex, or the text of a
// `surplus key generate` file: the seed in hex and a newline), export the seed, sign and
// verify. The key is kept in localStorage as a JWK; it is never sent anywhere.

import { fromHex, toHex } from "./encoding.js";

const ALG = { name: "Ed25519" };
// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410): SEQUENCE, version 0, algorithm 1.3.101.112,
// OCTET STRING holding OCTET STRING of 32 bytes.
const PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");
const STORAGE_KEY = "surplus.key.v1";

const b64urlToBytes = (s) => {
  const b64 = s.replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

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
    const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
    pkcs8.set(PKCS8_PREFIX);
    pkcs8.set(seed, PKCS8_PREFIX.length);
    const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ALG, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", privateKey);
    return new KeyPair(Uint8Array.from(seed), b64urlToBytes(jwk.x), privateKey);
  }

  /** A new random key pair. */
  static async generate() {
    const pair = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    return KeyPair.fromSeed(pkcs8.slice(pkcs8.length - 32));
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
