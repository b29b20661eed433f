// BLAKE3 (hash mode, 32-byte output) over an in-memory input, and the ledger's tagged hashing
// (ledger/src/encoding.rs: blake3(len(tag) as u8 || tag || body)). Written from the BLAKE3
// specification; no keyed mode, no key derivation, no extendable output: the ledger uses none.

const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const BLOCK_LEN = 64;
const CHUNK_LEN = 1024;

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) | 0;
  s[d] = rotr(s[d] ^ s[a], 16);
  s[c] = (s[c] + s[d]) | 0;
  s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = (s[a] + s[b] + y) | 0;
  s[d] = rotr(s[d] ^ s[a], 8);
  s[c] = (s[c] + s[d]) | 0;
  s[b] = rotr(s[b] ^ s[c], 7);
}

// The compression function: 16 output words.
function compress(cv, block, counter, blockLen, flags) {
  const s = new Uint32Array(16);
  s.set(cv, 0);
  s.set(IV.subarray(0, 4), 8);
  s[12] = counter % 0x100000000;
  s[13] = Math.floor(counter / 0x100000000);
  s[14] = blockLen;
  s[15] = flags;
  let m = Uint32Array.from(block);
  for (let round = 0; round < 7; round++) {
    g(s, 0, 4, 8, 12, m[0], m[1]);
    g(s, 1, 5, 9, 13, m[2], m[3]);
    g(s, 2, 6, 10, 14, m[4], m[5]);
    g(s, 3, 7, 11, 15, m[6], m[7]);
    g(s, 0, 5, 10, 15, m[8], m[9]);
    g(s, 1, 6, 11, 12, m[10], m[11]);
    g(s, 2, 7, 8, 13, m[12], m[13]);
    g(s, 3, 4, 9, 14, m[14], m[15]);
    const p = new Uint32Array(16);
    for (let i = 0; i < 16; i++) p[i] = m[PERMUTATION[i]];
    m = p;
  }
  for (let i = 0; i < 8; i++) {
    s[i] ^= s[i + 8];
    s[i + 8] ^= cv[i];
  }
  return s;
}

// Little-endian words of a block of at most 64 bytes, zero padded.
function blockWords(bytes, start, len) {
  const w = new Uint32Array(16);
  for (let i = 0; i < len; i++) w[i >> 2] |= bytes[start + i] << (8 * (i & 3));
  return w;
}

// What a chunk or parent node outputs before its chaining value (or the root) is taken.
function chunkOutput(input, index) {
  const start = index * CHUNK_LEN;
  const end = Math.min(start + CHUNK_LEN, input.length);
  let cv = IV;
  let pos = start;
  let first = true;
  // Every block but the last is compressed into the chaining value.
  while (end - pos > BLOCK_LEN) {
    const flags = first ? CHUNK_START : 0;
    cv = compress(cv, blockWords(input, pos, BLOCK_LEN), index, BLOCK_LEN, flags).subarray(0, 8);
    pos += BLOCK_LEN;
    first = false;
  }
  const len = end - pos;
  return {
    cv,
    block: blockWords(input, pos, len),
    counter: index,
    blockLen: len,
    flags: (first ? CHUNK_START : 0) | CHUNK_END,
  };
}

function parentOutput(left, right) {
  const block = new Uint32Array(16);
  block.set(left, 0);
  block.set(right, 8);
  return { cv: IV, block, counter: 0, blockLen: BLOCK_LEN, flags: PARENT };
}

const chainingValue = (o) => compress(o.cv, o.block, o.counter, o.blockLen, o.flags).subarray(0, 8);

/** BLAKE3 of `input` (Uint8Array), 32 bytes. */
export function blake3(input) {
  const chunks = Math.max(1, Math.ceil(input.length / CHUNK_LEN));
  const stack = [];
  for (let i = 0; i < chunks - 1; i++) {
    let cv = chainingValue(chunkOutput(input, i));
    // After i + 1 chunks, merge one completed subtree per trailing zero bit of the count.
    let total = i + 1;
    while ((total & 1) === 0) {
      cv = chainingValue(parentOutput(stack.pop(), cv));
      total /= 2;
    }
    stack.push(cv);
  }
  let out = chunkOutput(input, chunks - 1);
  while (stack.length > 0) out = parentOutput(stack.pop(), chainingValue(out));
  const words = compress(out.cv, out.block, 0, out.blockLen, out.flags | ROOT);
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = (words[i >> 2] >>> (8 * (i & 3))) & 0xff;
  return bytes;
}

const utf8 = new TextEncoder();

/** blake3(len(tag) as u8 || tag || body): the ledger's domain-separated hash. */
export function taggedHash(tag, body) {
  const t = typeof tag === "string" ? utf8.encode(tag) : tag;
  const input = new Uint8Array(1 + t.length + body.length);
  input[0] = t.length;
  input.set(t, 1);
  input.set(body, 1 + t.length);
  return blake3(input);
}
