// Ed25519 verification under the two rules of docs/ledger-format.md section 2, in plain
// JavaScript (BigInt), because the browser's WebCrypto applies neither exactly: it does not
// refuse small-order keys or R, and it is cofactorless where certificate votes need ZIP-215.
//   - verifyStrict: entries and checkpoints. s < ℓ; A and R canonical encodings of points not of
//     small order; [s]B − [k]A encodes to R's bytes.
//   - verifyZip215: commit-certificate votes. s < ℓ; A and R any encodings that decompress (y is
//     reduced mod p, x = 0 with the sign bit set is accepted); [8]([s]B − R − [k]A) = 0.
// k = SHA-512(R ‖ A ‖ M) mod ℓ over the bytes as given. Variable time: it checks public data.

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a, m = P) => ((a % m) + m) % m;

function pow(b, e) {
  let r = 1n;
  b = mod(b);
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
  }
  return r;
}
const inv = (a) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

// Points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z.
const IDENTITY = [0n, 1n, 1n, 0n];

/** The complete addition law of the twisted Edwards curve −x² + y² = 1 + d·x²·y². */
function add([x1, y1, z1, t1], [x2, y2, z2, t2]) {
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(2n * D * t1 * t2);
  const d = mod(2n * z1 * z2);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}
const negate = ([x, y, z, t]) => [mod(-x), y, z, mod(-t)];

function multiply(point, n) {
  let r = IDENTITY;
  for (let q = point; n > 0n; n >>= 1n) {
    if (n & 1n) r = add(r, q);
    q = add(q, q);
  }
  return r;
}
const isIdentity = ([x, y, z]) => mod(x) === 0n && mod(y - z) === 0n;
const isSmallOrder = (p) => isIdentity(multiply(p, 8n));

const leToInt = (bytes) => bytes.reduceRight((acc, b) => (acc << 8n) | BigInt(b), 0n);

function encode([x, y, z]) {
  const zi = inv(z);
  const ax = mod(x * zi);
  let ay = mod(y * zi);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, ay >>= 8n) out[i] = Number(ay & 0xffn);
  if (ax & 1n) out[31] |= 0x80;
  return out;
}

/** The point a 32-byte encoding names, or null; `strict` refuses non-canonical encodings. */
function decompress(bytes, strict) {
  const sign = bytes[31] >> 7;
  const yRaw = leToInt(bytes) & ((1n << 255n) - 1n);
  if (strict && yRaw >= P) return null;
  const y = mod(yRaw);
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else if (vx2 !== u) return null;
  if (x === 0n && sign === 1) {
    if (strict) return null;
  } else if (Number(x & 1n) !== sign) {
    x = P - x;
  }
  return [x, y, 1n, mod(x * y)];
}

const BASE = decompress(
  Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0x58 : 0x66)), true);

async function challenge(r, a, message) {
  const data = new Uint8Array(64 + message.length);
  data.set(r, 0);
  data.set(a, 32);
  data.set(message, 64);
  const h = new Uint8Array(await crypto.subtle.digest("SHA-512", data));
  return mod(leToInt(h), L);
}

function parts(publicKey, signature) {
  if (publicKey?.length !== 32 || signature?.length !== 64) return null;
  const r = signature.slice(0, 32);
  const s = leToInt(signature.slice(32));
  return s < L ? { r, s } : null;
}

/** Strict rule (entries, checkpoints); false on any malformed input. */
export async function verifyStrict(publicKey, message, signature) {
  const p = parts(publicKey, signature);
  if (!p) return false;
  const a = decompress(publicKey, true);
  const r = decompress(p.r, true);
  if (!a || !r || isSmallOrder(a) || isSmallOrder(r)) return false;
  const k = await challenge(p.r, publicKey, message);
  const expected = encode(add(multiply(BASE, p.s), negate(multiply(a, k))));
  return expected.every((b, i) => b === p.r[i]);
}

/** ZIP-215 rule (commit-certificate votes, as the consensus engine checks them). */
export async function verifyZip215(publicKey, message, signature) {
  const p = parts(publicKey, signature);
  if (!p) return false;
  const a = decompress(publicKey, false);
  const r = decompress(p.r, false);
  if (!a || !r) return false;
  const k = await challenge(p.r, publicKey, message);
  const d = add(add(multiply(BASE, p.s), negate(r)), negate(multiply(a, k)));
  return isSmallOrder(d);
}

/** For tests: the group operations the rules are built from. */
export const testing = { add, multiply, negate, encode, decompress, BASE, IDENTITY, L, P };
