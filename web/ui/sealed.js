// Opens a lease's credential sealed to its buyer (docs/contracts.md §6, "Sealed credential"),
// with the browser's WebCrypto (X25519, HKDF-SHA-256, AES-256-GCM), so that a buyer gets its
// credential from whichever node serves the page: the node hands out only the sealed bytes.
//   b      = the buyer's X25519 public key (exported from the private key below)
//   key    = HKDF-SHA256(salt = E ‖ b, ikm = X25519(buyer, E),
//                        info = "surplus/sealed-credential/v1" ‖ len(chain_id) ‖ chain_id ‖ lease)
//   sealed = E ‖ AES-256-GCM(key, nonce = 12 zero bytes, token)
// The buyer's X25519 private key is the first half of SHA-512 of its ed25519 seed.

import { concat, fromHex } from "./encoding.js";

const utf8 = new TextEncoder();
const TAG = utf8.encode("surplus/sealed-credential/v1");
/** PKCS #8 wrapping of a raw X25519 private key (RFC 8410): this prefix, then the 32 bytes. */
const PKCS8_X25519 = fromHex("302e020100300506032b656e04220420", 16, "pkcs8 prefix");
/** Bytes a seal adds to the token (the ephemeral key and the tag); the longest sealed value. */
export const OVERHEAD = 48;
export const MAX_SEALED = 4096;


const fromB64url = (s) =>
  Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4)),
    (c) => c.charCodeAt(0));

/** The X25519 private key (a CryptoKey) and public key (bytes) of an ed25519 seed. */
export async function x25519OfSeed(seed, subtle = globalThis.crypto.subtle) {
  const h = new Uint8Array(await subtle.digest("SHA-512", seed));
  const priv = await subtle.importKey("pkcs8", concat(PKCS8_X25519, h.slice(0, 32)),
    { name: "X25519" }, true, ["deriveBits"]);
  const jwk = await subtle.exportKey("jwk", priv);
  return { priv, publicKey: fromB64url(jwk.x) };
}

/**
 * Opens `sealed` (bytes or hex) with the buyer's ed25519 `seed` (32 bytes) for `leaseHex` on
 * `chainId`; the token's bytes. Throws if it was not sealed to this key for this lease and chain.
 */
export async function openSealed(sealed, seed, chainId, leaseHex, subtle = globalThis.crypto.subtle) {
  const s = typeof sealed === "string" ? fromHex(sealed, sealed.length / 2, "sealed credential") : sealed;
  if (s.length <= OVERHEAD || s.length > MAX_SEALED) {
    throw new Error(`a sealed credential is ${OVERHEAD + 1} to ${MAX_SEALED} bytes, not ${s.length}`);
  }
  const lease = fromHex(leaseHex, 32, "lease id");
  const chain = utf8.encode(chainId);
  const { priv, publicKey } = await x25519OfSeed(seed, subtle);
  const e = s.slice(0, 32);
  const pub = await subtle.importKey("raw", e, { name: "X25519" }, false, []);
  let shared;
  try {
    shared = await subtle.deriveBits({ name: "X25519", public: pub }, priv, 256);
  } catch {
    throw new Error("the sealed credential's key is not a usable X25519 key");
  }
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  const info = concat(TAG, Uint8Array.of(chain.length), chain, lease);
  const key = await subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: concat(e, publicKey), info },
    ikm, { name: "AES-GCM", length: 256 }, false, ["decrypt"]);
  try {
    return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, key, s.slice(32)));
  } catch {
    throw new Error("the sealed credential does not open with this key: it was sealed to another key, lease or chain");
  }
}
