#!/usr/bin/env python3
"""An independent checker of the Surplus conformance suite (docs/vectors/conformance/), written
from docs/ledger-format.md alone.

It reads each case's export file (section 8), decodes its blocks, headers, certificates and
entries (sections 1, 3, 4), and applies every ledger-level rule of section 6 in the documented
order: links, heights, timestamps, chain id, header hash, tree size and Merkle root (section 5),
entry signatures under the strict rule and certificate votes under ZIP-215 with a quorum
(section 2, both implemented below with Python integers), the proposer rule and the genesis
rules. For a case of level "ledger" it must reach the index's verdict, and for an invalid one the
same height, field and entry. A case of level "contracts" needs re-execution of the state
machine (docs/contracts.md), which this script does not do: it must pass the ledger-level
checks, and the output says so. It also checks that state-roots.json names the header hashes
and state roots of the valid sample ledger's blocks.

Needs the PyPI package `blake3` (everything else is the standard library):

    python3 -m venv venv && venv/bin/pip install blake3
    venv/bin/python docs/scripts/conformance.py [docs/vectors/conformance]

Exits 1 on any mismatch, 2 if the suite cannot be read.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

from blake3 import blake3

DEFAULT = Path(__file__).resolve().parent.parent / "vectors" / "conformance"

# ---------------------------------------------------------------------------------------------
# Ed25519 (section 2): edwards25519 in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z,
# x·y = T/Z, with the complete addition formula of RFC 8032 section 5.1.4.

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)


def pt_add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def pt_neg(p):
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def pt_mul(k, p):
    q = IDENTITY
    while k:
        if k & 1:
            q = pt_add(q, p)
        p = pt_add(p, p)
        k >>= 1
    return q


def pt_is_identity(p):
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


def pt_encode(p):
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def pt_decode(b):
    """Decompresses permissively, as ZIP-215 does: y may be >= p (it is taken mod p), and x = 0
    with the sign bit set is accepted. None if y names no curve point."""
    v = int.from_bytes(b, "little")
    sign, y = v >> 255, (v & (2**255 - 1)) % P
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = -x % P
    return (x, y, 1, x * y % P)


B = pt_decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def is_canonical(b):
    return int.from_bytes(b, "little") & (2**255 - 1) < P


def small_order(p):
    return pt_is_identity(pt_mul(8, p))


def challenge(r, a, msg):
    return int.from_bytes(hashlib.sha512(r + a + msg).digest(), "little") % L


def verify_strict(a, msg, sig):
    """Section 2, strict rule: s < ℓ; A and R canonical and not of small order; [s]B = R + [k]A
    checked by recomputing R and comparing encodings. Returns None or the reason."""
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    pa = pt_decode(a) if is_canonical(a) else None
    if pa is None or small_order(pa):
        return "key malformed, non-canonical or of small order"
    pr = pt_decode(r) if is_canonical(r) else None
    if s >= L or pr is None or small_order(pr):
        return "s >= l, or R non-canonical or of small order"
    k = challenge(r, a, msg)
    if pt_encode(pt_add(pt_mul(s, B), pt_neg(pt_mul(k, pa)))) != r:
        return "the equation does not hold"
    return None


def verify_zip215(a, msg, sig):
    """Section 2, ZIP-215: s < ℓ, any encodings that decompress, [8][s]B = [8]R + [8][k]A."""
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    pa, pr = pt_decode(a), pt_decode(r)
    if s >= L or pa is None or pr is None:
        return False
    k = challenge(r, a, msg)
    e = pt_add(pt_add(pt_mul(s, B), pt_neg(pr)), pt_neg(pt_mul(k, pa)))
    return pt_is_identity(pt_mul(8, e))


# ---------------------------------------------------------------------------------------------
# Encodings (sections 1, 3, 4).

MAX_PAYLOAD = 65_536
MAX_ENTRIES = 100_000
MAX_VALIDATORS = 1024
MAX_RECORD = 64 * 1024 * 1024
KIND_VALIDATORS = 1
KIND_VALIDATOR_SET = 4
MAX_TOTAL_POWER = 2**53


def tag(t):
    return bytes([len(t)]) + t


def short(b):
    return bytes([len(b)]) + b


def var(b):
    return struct.pack(">I", len(b)) + b


def valid_chain_id(b):
    ok = b"abcdefghijklmnopqrstuvwxyz0123456789._-"
    return 1 <= len(b) <= 64 and all(c in ok for c in b)


class DecodeError(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise DecodeError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n):
        return int.from_bytes(self.take(n), "big")

    def var(self, limit):
        n = self.uint(4)
        if n > limit:
            raise DecodeError(f"length {n} exceeds {limit}")
        return self.take(n)

    def finish(self):
        if self.pos != len(self.data):
            raise DecodeError("trailing bytes")


def decode_entry(data):
    r = Reader(data)
    e = {"kind": r.uint(2), "raw": data}
    auth = r.uint(1)
    if auth == 0:
        e["author"] = None
    elif auth == 1:
        e["author"], e["sig"] = r.take(32), r.take(64)
    else:
        raise DecodeError(f"unknown auth tag {auth}")
    e["payload"] = r.var(MAX_PAYLOAD)
    r.finish()
    return e


def decode_block(data):
    r = Reader(data)
    h = {"version": r.uint(2)}
    if h["version"] != 1:
        raise DecodeError(f"header version {h['version']}")
    h["chain_id"] = r.take(r.uint(1))
    if not valid_chain_id(h["chain_id"]):
        raise DecodeError("bad chain id")
    h["height"] = r.uint(8)
    h["prev_hash"] = r.take(32)
    h["timestamp_ms"] = r.uint(8)
    h["tree_size"] = r.uint(8)
    h["merkle_root"] = r.take(32)
    h["state_root"] = r.take(32)
    h["proposer"] = r.take(32)
    cert = {"round": r.uint(4), "sigs": []}
    count = r.uint(2)
    if count > MAX_VALIDATORS:
        raise DecodeError("too many certificate signatures")
    for _ in range(count):
        cert["sigs"].append((r.uint(2), r.take(64)))
    n = r.uint(4)
    if n > MAX_ENTRIES:
        raise DecodeError("too many entries")
    # An entry with a payload of at most 65,536 bytes is at most 65,639 bytes long.
    entries = [decode_entry(r.var(MAX_PAYLOAD + 256)) for _ in range(n)]
    r.finish()
    return {"header": h, "cert": cert, "entries": entries}


def header_hash(h):
    enc = (
        struct.pack(">H", h["version"])
        + short(h["chain_id"])
        + struct.pack(">Q", h["height"])
        + h["prev_hash"]
        + struct.pack(">QQ", h["timestamp_ms"], h["tree_size"])
        + h["merkle_root"]
        + h["state_root"]
        + h["proposer"]
    )
    return blake3(tag(b"surplus/header/v1") + enc).digest()


def entry_signing_bytes(chain_id, e):
    return (
        tag(b"surplus/entry/v1")
        + short(chain_id)
        + struct.pack(">H", e["kind"])
        + e["author"]
        + var(e["payload"])
    )


def vote_bytes(chain_id, height, rnd, hh):
    # Precommit (kind 2) for the value header_hash (0x01 ‖ hash).
    return (
        tag(b"surplus/vote/v1")
        + short(chain_id)
        + struct.pack(">QIB", height, rnd, 2)
        + b"\x01"
        + hh
    )


def merkle_root(leaves):
    """Section 5: RFC 9162's MTH with BLAKE3 over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return blake3(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return blake3(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


# ---------------------------------------------------------------------------------------------
# The audit (sections 6 and 8). A failure is (height, field, entry index or None).


class Failure(Exception):
    def __init__(self, height, field, entry=None, why=""):
        super().__init__(f"height {height}, {field}, entry {entry}: {why}")
        self.result = (height, field, entry)


def read_export(data):
    """Section 8, read lazily like the audit: yields blocks; raises Failure where the file is
    damaged; returns (chain id of the file header, footer)."""
    if data[:16] != b"SURPLUS-LEDGER\0\0" or len(data) < 19 or data[16:18] != b"\x00\x01":
        raise ValueError("not a version-1 Surplus export")
    n = data[18]
    file_chain = data[19 : 19 + n]
    if len(file_chain) != n or not valid_chain_id(file_chain):
        raise ValueError("malformed file header")
    pos, height = 19 + n, 0
    while True:
        if pos >= len(data):
            raise Failure(height, "file", why="ends without its footer")
        t = data[pos]
        pos += 1
        if t == 0x42:  # 'B'
            if pos + 4 > len(data):
                raise Failure(height, "record.length", why="truncated")
            length = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
            if length > MAX_RECORD or length > len(data) - pos:
                raise Failure(height, "record.length", why=f"{length} bytes claimed")
            try:
                block = decode_block(data[pos : pos + length])
            except DecodeError as e:
                raise Failure(height, "block", why=str(e)) from None
            pos += length
            if block["header"]["height"] != height:
                raise Failure(height, "header.height", why="record out of sequence")
            yield block
            height += 1
        elif t == 0x46:  # 'F'
            if pos + 48 > len(data):
                raise Failure(height, "footer", why="truncated")
            f = data[pos : pos + 48]
            if pos + 48 != len(data):
                raise Failure(height, "footer", why="bytes follow the footer")
            return file_chain, (int.from_bytes(f[:8], "big"), int.from_bytes(f[8:16], "big"), f[16:])
        else:
            raise Failure(height, "record.tag", why=f"unknown tag {t:#04x}")


def check_entries(block, chain_id, first):
    for i, e in enumerate(block["entries"]):
        if e["author"] is not None:
            why = verify_strict(e["author"], entry_signing_bytes(chain_id, e), e["sig"])
            if why:
                raise Failure(block["header"]["height"], "entry.signature", first + i, why)


def advance_merkle(block, leaves):
    h = block["header"]
    leaves = leaves + [blake3(b"\x00" + e["raw"]).digest() for e in block["entries"]]
    if h["tree_size"] != len(leaves):
        raise Failure(h["height"], "header.tree_size")
    if h["merkle_root"] != merkle_root(leaves):
        raise Failure(h["height"], "header.merkle_root")
    return leaves


def check_genesis(g):
    h = g["header"]
    if h["height"] != 0:
        raise Failure(0, "header.height")
    if h["prev_hash"] != bytes(32):
        raise Failure(0, "header.prev_hash")
    if g["cert"]["round"] != 0 or g["cert"]["sigs"]:
        raise Failure(0, "certificate")
    validators = None
    for i, e in enumerate(g["entries"]):
        if e["kind"] != KIND_VALIDATORS:
            continue
        if validators is not None:
            raise Failure(0, "entry.kind", i, "a second validators entry")
        if e["author"] is not None:
            raise Failure(0, "entry.auth", i, "the validators entry is signed")
        p = e["payload"]
        n = int.from_bytes(p[:2], "big") if len(p) >= 2 else -1
        keys = [p[2 + 32 * j : 34 + 32 * j] for j in range(max(n, 0))]
        if n < 1 or n > MAX_VALIDATORS or len(p) != 2 + 32 * n or len(set(keys)) != n:
            raise Failure(0, "entry.payload", i, "malformed validator set")
        validators = keys
    if validators is None:
        raise Failure(0, "entries", why="no validators entry")
    for i, e in enumerate(g["entries"]):
        if e["kind"] == KIND_VALIDATOR_SET:
            raise Failure(0, "entry.kind", i, "a validator-set entry in genesis")
    # The genesis set: every validator has voting power 1.
    validators = (validators, [1] * len(validators))
    leaves = advance_merkle(g, [])
    check_entries(g, h["chain_id"], 0)
    return validators, leaves


def validator_set(block, first):
    """Section 6 rule 4: the set a block's validator-set entry (section 3, kind 4) puts in force
    from the next block, as (keys, powers), or None."""
    height, found = block["header"]["height"], None
    for i, e in enumerate(block["entries"]):
        if e["kind"] != KIND_VALIDATOR_SET:
            continue
        if found is not None:
            raise Failure(height, "entry.kind", first + i, "a second validator-set entry")
        if e["author"] is not None:
            raise Failure(height, "entry.auth", first + i, "the validator-set entry is signed")
        p = e["payload"]
        n = int.from_bytes(p[:2], "big") if len(p) >= 2 else -1
        rows = [p[2 + 40 * j : 42 + 40 * j] for j in range(max(n, 0))]
        keys = [r[:32] for r in rows]
        powers = [int.from_bytes(r[32:], "big") for r in rows]
        if (
            n < 1
            or n > MAX_VALIDATORS
            or len(p) != 2 + 40 * n
            or len(set(keys)) != n
            or min(powers) < 1
            or sum(powers) > MAX_TOTAL_POWER
        ):
            raise Failure(height, "entry.payload", first + i, "malformed validator set")
        found = (keys, powers)
    return found


def certificate_error(block, validators):
    """Section 4: indices strictly increasing and below n, signers holding more than two thirds
    of the voting power, each vote valid under ZIP-215 for the block's own chain id, height,
    round and header hash."""
    h, c = block["header"], block["cert"]
    keys, powers = validators
    prev = -1
    for v, _ in c["sigs"]:
        if v <= prev:
            return "validator indices not strictly increasing"
        if v >= len(keys):
            return "unknown validator"
        prev = v
    if 3 * sum(powers[v] for v, _ in c["sigs"]) <= 2 * sum(powers):
        return "no quorum"
    msg = vote_bytes(h["chain_id"], h["height"], c["round"], header_hash(h))
    for v, sig in c["sigs"]:
        if not verify_zip215(keys[v], msg, sig):
            return f"vote of validator {v} invalid"
    return None


def check_next(block, head, head_hash, chain_id, validators, leaves):
    h = block["header"]
    height = head["height"] + 1
    if h["height"] != height:
        raise Failure(height, "header.height")
    cert_err = certificate_error(block, validators)
    link_broken = h["chain_id"] != chain_id or h["prev_hash"] != head_hash
    if link_broken and cert_err is None and head["height"] == 0:
        raise Failure(0, "header", why="certified block 1 does not link to this genesis")
    if h["chain_id"] != chain_id:
        raise Failure(height, "header.chain_id")
    if cert_err:
        raise Failure(height, "certificate", why=cert_err)
    if h["prev_hash"] != head_hash:
        raise Failure(height, "header.prev_hash")
    if h["timestamp_ms"] < head["timestamp_ms"]:
        raise Failure(height, "header.timestamp_ms")
    keys = validators[0]
    if h["proposer"] not in keys:
        raise Failure(height, "header.proposer", why="not a validator")
    n = len(keys)
    first = (keys.index(h["proposer"]) - (height - 1)) % n
    if first > block["cert"]["round"]:
        raise Failure(height, "header.proposer", why=f"first proposes in round {first}")
    new_leaves = advance_merkle(block, leaves)
    new_set = validator_set(block, len(leaves))
    check_entries(block, chain_id, len(leaves))
    return new_leaves, new_set or validators


def audit(data):
    """Returns ("valid", blocks) or ("invalid", (height, field, entry))."""
    blocks = []
    it = read_export(data)
    try:
        try:
            g = next(it)
        except StopIteration as stop:
            raise Failure(0, "ledger", why="no block") from stop
        validators, leaves = check_genesis(g)
        head, head_hash, chain_id = g["header"], header_hash(g["header"]), g["header"]["chain_id"]
        blocks.append(g)
        while True:
            try:
                b = next(it)
            except StopIteration as stop:
                file_chain, footer = stop.value
                break
            leaves, validators = check_next(b, head, head_hash, chain_id, validators, leaves)
            head, head_hash = b["header"], header_hash(b["header"])
            blocks.append(b)
        if file_chain != chain_id:
            raise Failure(0, "file.chain_id")
        if footer != (head["height"] + 1, head["height"], head_hash):
            raise Failure(head["height"], "footer")
    except Failure as f:
        return "invalid", f.result
    return "valid", blocks


def main():
    suite = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    try:
        index = json.loads((suite / "index.json").read_text())
        roots = json.loads((suite / "state-roots.json").read_text())
        files = {c["name"]: (suite / c["file"]).read_bytes() for c in index["cases"]}
    except (OSError, ValueError, KeyError) as e:
        print(f"cannot read the suite in {suite}: {e}", file=sys.stderr)
        return 2
    bad = 0
    counts = {"ledger": 0, "contracts": 0}
    for c in index["cases"]:
        name, level = c["name"], c["level"]
        try:
            verdict, detail = audit(files[name])
        except ValueError as e:
            verdict, detail = "unreadable", str(e)
        want = "valid" if c["verdict"] == "valid" else (c["height"], c["field"], c["entry"])
        got = "valid" if verdict == "valid" else detail
        if level == "ledger":
            ok = got == want
            note = "valid" if want == "valid" else "invalid at height {}, {}, entry {}".format(*want)
        else:
            # Re-execution (docs/contracts.md) decides these: the ledger rules must pass them.
            ok = got == "valid"
            note = f"passes the ledger-level checks; re-execution (not run here) finds it {c['verdict']}"
            if c["verdict"] == "invalid":
                note += " at height {}, {}, entry {}".format(c["height"], c["field"], c["entry"])
        counts[level] += ok
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {name} [{level}]: {note}" + ("" if ok else f"; got {got}"))
    # The state roots of the valid sample ledger: the header hash and state root of each block.
    verdict, blocks = audit(files[roots["ledger"].removesuffix(".export")])
    rows = [
        {
            "height": b["header"]["height"],
            "header_hash": header_hash(b["header"]).hex(),
            "state_root": b["header"]["state_root"].hex(),
        }
        for b in (blocks if verdict == "valid" else [])
    ]
    if rows != roots["blocks"]:
        print(f"BAD state-roots.json does not match the headers of {roots['ledger']}")
        bad += 1
    else:
        print(f"ok  state-roots.json: {len(rows)} blocks of {roots['ledger']}")
    print(
        f"{counts['ledger']} ledger-level cases reach the expected verdict; {counts['contracts']} "
        "contracts-level cases pass the ledger-level checks (their verdict needs re-execution, "
        f"which this script does not do); {bad} mismatches"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
