#!/usr/bin/env python3
"""Reproduces the Surplus state-root vectors (docs/vectors/state-root-v1.json) from
docs/contracts.md, section 5.

For each state of the file: rebuilds every part of the state-root encoding from the part's
field values (never from its bytes), compares it with the part's bytes, checks that the parts
come in the specified sequence, that each list is in the specified order and that each count is
the number of items that follow it, then hashes the concatenation of the rebuilt parts with
BLAKE3 and compares the result with the root.

Needs the PyPI package `blake3` (everything else is the standard library):

    python3 -m venv venv && venv/bin/pip install blake3
    venv/bin/python docs/scripts/state_root.py [docs/vectors/state-root-v1.json]

Exits 1 on any mismatch, 2 if the file cannot be read.
"""

import json
import struct
import sys
from pathlib import Path

from blake3 import blake3

DEFAULT = Path(__file__).resolve().parent.parent / "vectors" / "state-root-v1.json"

KIND_ORDER = 16
SIDE = {"offer": 1, "bid": 2}
FILL_ALL_OR_NONE = 1
FILL_AT_LEAST = 2


# Primitives of docs/ledger-format.md, section 1.
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


def b32(h):
    b = bytes.fromhex(h)
    if len(b) != 32:
        raise ValueError(f"expected 32 bytes, got {len(b)}: {h}")
    return b


def market(m):
    cls, region = m.split("@", 1)
    return cls.encode(), region.encode()


# Payloads the state root embeds.
def genesis_params(f):
    """docs/contracts.md, section 2: classes sorted by id, attributes by name, regions by id."""
    out = b32(f["treasury"]) + u16(f["fee_bps"]) + u16(f["penalty_bps"])
    classes = sorted(f["classes"], key=lambda c: c["id"].encode())
    out += u16(len(classes))
    for c in classes:
        out += short(c["id"].encode()) + var(c["description"].encode())
        attributes = sorted(c["attributes"].items(), key=lambda kv: kv[0].encode())
        out += u16(len(attributes))
        for name, value in attributes:
            out += short(name.encode()) + u64(value)
    regions = sorted(f["regions"], key=lambda r: r["id"].encode())
    out += u16(len(regions))
    for r in regions:
        out += short(r["id"].encode()) + var(r["description"].encode())
    return out


def fill_payload(f):
    """The fill entry's payload (docs/contracts.md, section 4), with the lease's current end."""
    cls, region = market(f["market"])
    out = u64(f["height"]) + b32(f["bid"]) + b32(f["offer"]) + b32(f["buyer"]) + b32(f["provider"])
    out += short(cls) + short(region)
    out += u32(f["slots"]) + u64(f["start_ms"]) + u64(f["end_ms"]) + u64(f["price"])
    return out


def revocation_payload(lease_id, ids):
    """The revocation entry's payload (docs/contracts.md, section 4)."""
    if not 1 <= len(ids) <= 16:
        raise ValueError(f"a grant holds 1 to 16 revocation ids, not {len(ids)}")
    return lease_id + u8(len(ids)) + b"".join(short(bytes.fromhex(i)) for i in ids)


def order_payload(o):
    """The canonical payload of an order entry (docs/orders.md, section 2)."""
    cls, region = market(o["market"])
    side = o["side"]
    price = o["reserve"] if side == "offer" else o["limit"]
    out = u8(SIDE[side]) + short(cls) + short(region)
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


# One builder per part (docs/contracts.md, section 5).
def header(f):
    if f["tag"] != "surplus/state/v1":
        raise ValueError(f"the tag is {f['tag']!r}")
    return tag(f["tag"]) + short(f["chain_id"].encode()) + u64(f["height"]) + u64(
        f["time_ms"]
    ) + u64(f["supply"])


def count(f):
    return u64(f["count"])


def account(f):
    return b32(f["key"]) + u64(f["balance"]) + u64(f["seq"])


def lease(f):
    lease_id = b32(f["id"])
    out = lease_id + var(fill_payload(f["fill"]))
    out += u32(f["hours"]) + u32(f["hours_paid"]) + u64(f["escrow"]) + u8(f["status"])
    out += u32(len(f["segments"]))
    for s in f["segments"]:
        out += u32(s["hours"]) + u64(s["price"])
    g = f["grant"]
    if g is None:
        out += u8(0)
    else:
        out += u8(1) + b32(g["token_hash"]) + var(revocation_payload(lease_id, g["revocation_ids"]))
    return out


def last_price(f):
    cls, region = market(f["market"])
    return short(cls) + short(region) + u64(f["price"])


def revoked_id(f):
    return short(bytes.fromhex(f["id"]))


def book(f):
    return u64(f["time_ms"]) + u64(f["count"])


def resting(f):
    author = b32(f["author"])
    signature = bytes.fromhex(f["signature"])
    if len(signature) != 64:
        raise ValueError("a signature is 64 bytes")
    entry = u16(KIND_ORDER) + u8(1) + author + signature + var(order_payload(f["order"]))
    entry_id = blake3(tag("surplus/entry-id/v1") + entry).digest()
    if entry_id.hex() != f["id"]:
        raise ValueError(f"the order's entry has id {entry_id.hex()}, the vector says {f['id']}")
    out = var(entry) + u64(f["height"]) + u32(f["remaining"])
    out += u32(len(f["allocations"]))
    for a in f["allocations"]:
        out += b32(a["bid"]) + u64(a["start_ms"]) + u64(a["end_ms"]) + u32(a["slots"])
    return out


def nonce(f):
    return b32(f["author"]) + u64(f["nonce"]) + u64(f["expiry_ms"])


# The sequence of parts: (part, builder, the list it opens or None, sort key of the items).
SEQUENCE = [
    ("header", header, None, None),
    ("genesis_params", lambda f: var(genesis_params(f)), None, None),
    ("accounts", count, ("account", account), lambda f: b32(f["key"])),
    ("leases", count, ("lease", lease), lambda f: b32(f["id"])),
    ("last_prices", count, ("last_price", last_price), lambda f: market(f["market"])),
    ("revoked", count, ("revoked_id", revoked_id), lambda f: bytes.fromhex(f["id"])),
    ("book", book, ("resting", resting), lambda f: b32(f["id"])),
    (
        "nonces",
        count,
        ("nonce", nonce),
        lambda f: (b32(f["author"]), int(f["nonce"]), int(f["expiry_ms"])),
    ),
]


def check(state):
    """Returns (errors, root computed from the fields)."""
    errors = []
    parts = state["parts"]
    built = []
    i = 0

    def build(p, builder):
        b = builder(p["fields"])
        if b.hex() != p["bytes"]:
            errors.append(
                f"part {i} ({p['part']}): built {b.hex()}\n"
                f"{' ' * (10 + len(str(i)) + len(p['part']))}vector {p['bytes']}"
            )
        built.append(b)

    for name, builder, items, key in SEQUENCE:
        if i >= len(parts) or parts[i]["part"] != name:
            got = parts[i]["part"] if i < len(parts) else "the end"
            errors.append(f"part {i}: expected {name}, found {got}")
            return errors, None
        head = parts[i]
        build(head, builder)
        i += 1
        if items is None:
            continue
        item_name, item_builder = items
        start = i
        while i < len(parts) and parts[i]["part"] == item_name:
            build(parts[i], item_builder)
            i += 1
        n = i - start
        if int(head["fields"]["count"]) != n:
            errors.append(f"{name}: count {head['fields']['count']}, but {n} {item_name} parts follow")
        keys = [key(p["fields"]) for p in parts[start:i]]
        if any(a >= b for a, b in zip(keys, keys[1:])):
            errors.append(f"{name}: the {item_name} parts are not in strictly increasing order")
    if i != len(parts):
        errors.append(f"part {i}: {parts[i]['part']} after the replay set")
    return errors, blake3(b"".join(built)).digest()


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {path}: {e}", file=sys.stderr)
        return 2
    passed = failed = 0
    for state in doc["states"]:
        try:
            errors, root = check(state)
        except (KeyError, ValueError, TypeError, struct.error) as e:
            errors, root = [f"malformed vector: {type(e).__name__}: {e}"], None
        if root is not None and root.hex() != state["root"]:
            errors.append(f"root: computed {root.hex()}, vector has {state['root']}")
        if errors:
            failed += 1
            print(f"FAIL {state.get('name', '?')}")
            for e in errors:
                print(f"  {e}")
        else:
            passed += 1
            print(f"ok   {state['name']}: {len(state['parts'])} parts, root {state['root']}")
    if passed + failed == 0:
        print(f"error: {path} holds no states", file=sys.stderr)
        return 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
