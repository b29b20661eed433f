#!/usr/bin/env python3
"""Reproduces the Surplus order test vectors (docs/vectors/order-v1.json) from docs/orders.md.

For each vector: rebuilds the payload from the order's fields, the signing bytes, verifies the
signature under the author's public key, re-signs with the author's seed (Ed25519 is
deterministic, so the signature must be identical), rebuilds the entry and its id.

Needs the PyPI packages `cryptography` (Ed25519) and `blake3`:

    python3 -m venv venv && venv/bin/pip install cryptography blake3
    venv/bin/python docs/scripts/order_vector.py [docs/vectors/order-v1.json]

Exits 1 on any mismatch, 2 if the file cannot be read.
"""

import json
import struct
import sys
from pathlib import Path

from blake3 import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DEFAULT = Path(__file__).resolve().parent.parent / "vectors" / "order-v1.json"

KIND_ORDER = 16
KIND_CANCEL = 17
SIDE = {"offer": 1, "bid": 2}
FILL_ALL_OR_NONE = 1
FILL_AT_LEAST = 2


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    # u64 fields are decimal strings in the JSON (JavaScript numbers hold only 53 bits).
    return struct.pack(">Q", int(v))


def short(b):
    if len(b) > 255:
        raise ValueError("short() takes at most 255 bytes")
    return u8(len(b)) + b


def var(b):
    return u32(len(b)) + b


def tag(t):
    return short(t.encode("ascii"))


def order_payload(o):
    """The canonical payload of an order entry (docs/orders.md, section 2)."""
    cls, region = o["market"].split("@", 1)
    side = o["side"]
    price = o["reserve"] if side == "offer" else o["limit"]
    out = u8(SIDE[side]) + short(cls.encode()) + short(region.encode())
    out += u32(o["slots"]) + u64(price) + u64(o["expiry_ms"]) + u64(o["nonce"])
    if side == "offer":
        out += u64(o["from_ms"]) + u64(o["until_ms"]) + u32(o["min_hours"])
    else:
        out += u32(o["hours"]) + u64(o["earliest_ms"]) + u64(o["latest_ms"])
        fill = o["fill"]
        if fill == "all_or_none":
            out += u8(FILL_ALL_OR_NONE)
        else:
            out += u8(FILL_AT_LEAST) + u32(fill["at_least"])
    return out


def payload_of(v):
    if v["kind"] == KIND_ORDER:
        return order_payload(v["order"])
    if v["kind"] == KIND_CANCEL:
        order_id = bytes.fromhex(v["cancel"]["order"])
        if len(order_id) != 32:
            raise ValueError("a cancel names a 32-byte order id")
        return order_id
    raise ValueError(f"kind {v['kind']} is not an order (16) or a cancel (17)")


def signing_bytes(chain_id, kind, author, payload):
    return tag("surplus/entry/v1") + short(chain_id.encode()) + u16(kind) + author + var(payload)


def entry_encoding(kind, author, signature, payload):
    return u16(kind) + u8(1) + author + signature + var(payload)


def entry_id(entry):
    return blake3(tag("surplus/entry-id/v1") + entry).digest()


def check(doc, v, seeds):
    """Returns the list of mismatches of one vector (empty if it reproduces)."""
    errors = []

    def expect(field, got):
        if got.hex() != v[field]:
            errors.append(f"{field}: computed {got.hex()}, vector has {v[field]}")

    chain_id = doc["chain_id"]
    kind = v["kind"]
    author = bytes.fromhex(v["author"])
    payload = payload_of(v)
    expect("payload", payload)
    msg = signing_bytes(chain_id, kind, author, payload)
    expect("signing_bytes", msg)

    signature = bytes.fromhex(v["signature"])
    try:
        Ed25519PublicKey.from_public_bytes(author).verify(signature, msg)
    except InvalidSignature:
        errors.append("signature: does not verify under the author's key over the signing bytes")
    seed = seeds.get(v["author"])
    if seed is None:
        errors.append("author: no seed in keys[] for this public key")
    else:
        key = Ed25519PrivateKey.from_private_bytes(seed)
        public = key.public_key().public_bytes_raw()
        if public != author:
            errors.append(f"author: the seed gives public key {public.hex()}")
        resigned = key.sign(msg)
        if resigned != signature:
            errors.append(
                f"signature: re-signing gives {resigned.hex()}, vector has {signature.hex()}"
            )

    entry = entry_encoding(kind, author, signature, payload)
    expect("entry", entry)
    expect("id", entry_id(entry))
    return errors


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {path}: {e}", file=sys.stderr)
        return 2
    seeds = {k["public"]: bytes.fromhex(k["seed"]) for k in doc["keys"]}
    passed = failed = 0
    for v in doc["vectors"]:
        try:
            errors = check(doc, v, seeds)
        except (KeyError, ValueError, TypeError, struct.error) as e:
            errors = [f"malformed vector: {type(e).__name__}: {e}"]
        if errors:
            failed += 1
            print(f"FAIL {v.get('name', '?')}")
            for e in errors:
                print(f"  {e}")
        else:
            passed += 1
            print(f"ok   {v['name']}: id {v['id']}")
    if passed + failed == 0:
        print(f"error: {path} holds no vectors", file=sys.stderr)
        return 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
