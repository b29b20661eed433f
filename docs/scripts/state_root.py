#!/usr/bin/env python3
"""Reproduces the Surplus state-root vectors, version 2 (docs/vectors/state-root-v2.json), from
docs/contracts.md, section 5.

For each state of the file:

- rebuilds every item's natural key and value from the item's field values (never from its
  bytes) and compares them with the item's `key` and `value`;
- computes each key hash from the kind and the key, and each value hash from the value, and
  compares them with `key_hash` and `value_hash`; checks that no two items have the same kind and
  key (or the same key hash) and that there is exactly one chain item;
- computes the root of the sparse Merkle tree over the items (the tree code below is written from
  section 5 alone) and compares it with `root`;
- decodes and verifies every proof of `proofs` against that root (an inclusion proof for a key
  whose value is given, an exclusion proof for a key whose value is null), checks that the value
  is the listed item's (or that no item has the key), and checks that changing any one byte of
  the proof makes it fail.

Needs the PyPI package `blake3` (everything else is the standard library):

    python3 -m venv venv && venv/bin/pip install blake3
    venv/bin/python docs/scripts/state_root.py [docs/vectors/state-root-v2.json]

Exits 1 on any mismatch, 2 if the file cannot be read.
"""

import json
import struct
import sys
from pathlib import Path

from blake3 import blake3

DEFAULT = Path(__file__).resolve().parent.parent / "vectors" / "state-root-v2.json"

KEY_TAG = "surplus/state/v2/key"
CHAIN_TAG = "surplus/state/v2"
DEFAULT_NOTICE_MS = 86_400_000  # genesis-params notice_ms when absent (docs/contracts.md, section 2)
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


# Payloads the values of the items embed.
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
    # Present when it differs from the default, 24 hours, or when supervision follows.
    notice_ms = int(f.get("notice_ms", DEFAULT_NOTICE_MS))
    sup = f.get("supervision")
    if notice_ms != DEFAULT_NOTICE_MS or sup is not None:
        out += u64(notice_ms)
    # Supervision (docs/contracts.md, section 10), absent while it is off.
    if sup is not None:
        out += u64(sup["interval_ms"]) + u16(sup["window"]) + u16(sup["quorum_bps"])
        out += u16(sup["min_down"])
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


# One builder per kind of item (docs/contracts.md, section 5): fields -> (natural key, value).
def chain(f):
    if f["tag"] != CHAIN_TAG:
        raise ValueError(f"the tag is {f['tag']!r}")
    value = tag(f["tag"]) + short(f["chain_id"].encode())
    value += u64(f["height"]) + u64(f["time_ms"]) + u64(f["supply"])
    value += var(genesis_params(f["genesis_params"])) + u64(f["book_time_ms"])
    return b"", value


def account(f):
    key = b32(f["key"])
    value = key + u64(f["balance"]) + u64(f["seq"])
    bond = int(f.get("bond", 0))
    if bond != 0:  # the provider bond, absent while there is none
        value += u64(bond)
    return key, value


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
    elif not g.get("sealed"):
        out += u8(1) + b32(g["token_hash"]) + var(revocation_payload(lease_id, g["revocation_ids"]))
    else:  # with the token sealed to the buyer
        out += u8(2) + b32(g["token_hash"]) + var(revocation_payload(lease_id, g["revocation_ids"]))
        out += var(bytes.fromhex(g["sealed"]))
    n = f.get("notice")
    if n is not None:  # the provider's notice, absent without one
        out += u8(1) + u64(n["end_ms"]) + u64(n["given_ms"]) + u8(1 if n["in_time"] else 0)
    down_ms, credited = int(f.get("down_ms", 0)), int(f.get("credited", 0))
    if down_ms != 0 or credited != 0:  # what the probes found, absent until they found it down
        out += u8(2) + u64(down_ms) + u64(credited)
    p = f.get("probe")
    if p is not None:  # where to probe it, absent until its provider said
        if p["kind"] == "tcp":
            out += u8(3) + u8(1) + short(p["address"].encode())
        elif p["kind"] == "http":
            out += u8(3) + u8(2) + short(p["url"].encode()) + u16(p["status"])
        else:
            raise ValueError(f"unknown probe kind {p['kind']!r}")
    return lease_id, out


def order(f):
    author = b32(f["author"])
    signature = bytes.fromhex(f["signature"])
    if len(signature) != 64:
        raise ValueError("a signature is 64 bytes")
    entry = u16(KIND_ORDER) + u8(1) + author + signature + var(order_payload(f["order"]))
    entry_id = blake3(tag("surplus/entry-id/v1") + entry).digest()
    if entry_id.hex() != f["id"]:
        raise ValueError(f"the order's entry has id {entry_id.hex()}, the vector says {f['id']}")
    return entry_id, var(entry) + u64(f["height"]) + u32(f["remaining"])


def revoked(f):
    key = short(bytes.fromhex(f["id"]))
    return key, key


def nonce(f):
    key = b32(f["author"]) + u64(f["nonce"])
    return key, key + u64(f["expiry_ms"])


def price(f):
    cls, region = market(f["market"])
    key = short(cls) + short(region)
    return key, key + u64(f["price"])


def allocation(f):
    key = b32(f["offer"]) + b32(f["bid"]) + u64(f["start_ms"])
    return key, key + u64(f["end_ms"]) + u32(f["slots"])


# Governance actions (docs/contracts.md, section 7): a one-byte type, then its fields.
def action_bytes(a):
    t = a["type"]
    if t == "add_validator":
        return u8(1) + b32(a["key"]) + u64(a["power"]) + short(a["address"].encode())
    if t == "remove_validator":
        return u8(2) + b32(a["key"])
    if t == "set_power":
        return u8(3) + b32(a["key"]) + u64(a["power"])
    if t == "set_fees":
        return u8(4) + u16(a["fee_bps"]) + u16(a["penalty_bps"])
    if t == "add_class":
        c = a["class"]
        attributes = sorted(c["attributes"].items(), key=lambda kv: kv[0].encode())
        out = u8(5) + short(c["id"].encode()) + var(c["description"].encode())
        out += u16(len(attributes))
        for name, value in attributes:
            out += short(name.encode()) + u64(value)
        return out
    if t == "retire_class":
        return u8(6) + short(a["id"].encode())
    if t == "add_region":
        r = a["region"]
        return u8(7) + short(r["id"].encode()) + var(r["description"].encode())
    if t == "retire_region":
        return u8(8) + short(a["id"].encode())
    if t == "rotate_validator":
        return u8(9) + b32(a["old"]) + b32(a["new"])
    if t == "set_consensus":
        return u8(10) + consensus_value(a["params"])
    raise ValueError(f"unknown action {t!r}")


def consensus_value(f):
    return u64(f["batch_interval_ms"]) + u32(f["max_block_entries"]) + u64(f["max_block_bytes"])


def consensus(f):
    return b"", consensus_value(f)


def validator(f):
    key = b32(f["key"])
    return key, u16(f["position"]) + key + u64(f["power"]) + short(f["address"].encode())


def proposal(f):
    pid = b32(f["id"])
    out = pid + b32(f["proposer"]) + u64(f["height"]) + u64(f["effective"]) + u64(f["passed"])
    out += var(action_bytes(f["action"]))
    out += u16(len(f["voters"]))
    for v in f["voters"]:
        out += b32(v["key"]) + u64(v["power"])
    out += u16(len(f["votes"]))
    for v in f["votes"]:
        out += b32(v["voter"]) + u8(1 if v["yes"] else 0)
    return pid, out


def maintenance(f):
    key = b32(f["provider"]) + short(f["pool"].encode())
    cls, region = market(f["market"])
    value = key + short(cls) + short(region) + u64(f["start_ms"]) + u64(f["until_ms"])
    value += var(f["reason"].encode()) + u64(f["height"])
    return key, value


def rotation(f):
    old = b32(f["old"])
    return old, old + b32(f["new"]) + u64(f["height"])


def tally(f):
    """The down reports counted for a lease in an interval (docs/contracts.md, section 10)."""
    key = u64(f["interval"]) + b32(f["lease"])
    if f["decided"] not in (0, 1, 2):
        raise ValueError(f"decided is {f['decided']}, not 0, 1 or 2")
    down = [b32(k) for k in f["down"]]
    if down != sorted(set(down)):
        raise ValueError("a tally's keys are distinct and in increasing order")
    return key, key + u8(f["decided"]) + u16(len(down)) + b"".join(down)


# kind number -> (name, builder)
KINDS = {
    0: ("chain", chain),
    1: ("account", account),
    2: ("lease", lease),
    3: ("order", order),
    4: ("revoked", revoked),
    5: ("nonce", nonce),
    6: ("price", price),
    7: ("allocation", allocation),
    8: ("validator", validator),
    9: ("proposal", proposal),
    10: ("rotation", rotation),
    11: ("consensus", consensus),
    12: ("maintenance", maintenance),
    13: ("tally", tally),
}


def key_hash(kind, key):
    return blake3(tag(KEY_TAG) + u8(kind) + key).digest()


# The sparse Merkle tree (docs/contracts.md, section 5).
PLACEHOLDER = b"SPARSE_MERKLE_PLACEHOLDER_HASH__"


def leaf_hash(key_hash, value_hash):
    return blake3(b"JMT::LeafNode" + key_hash + value_hash).digest()


def internal_hash(left, right):
    return blake3(b"JMT::IntrnalNode" + left + right).digest()


def bit(h, depth):
    """Bit `depth` of a key hash, the most significant bit of byte 0 first; 1 = right."""
    return (h[depth // 8] >> (7 - depth % 8)) & 1


def common_prefix_bits(a, b):
    n = 0
    while n < 256 and bit(a, n) == bit(b, n):
        n += 1
    return n


def subtree(leaves, depth):
    """The hash of the subtree at `depth` holding `leaves` [(key_hash, value_hash)], distinct."""
    if not leaves:
        return PLACEHOLDER
    if len(leaves) == 1:
        return leaf_hash(*leaves[0])
    left = [kv for kv in leaves if bit(kv[0], depth) == 0]
    right = [kv for kv in leaves if bit(kv[0], depth) == 1]
    return internal_hash(subtree(left, depth + 1), subtree(right, depth + 1))


def tree_root(leaves):
    return subtree(list(leaves), 0)


class BadProof(Exception):
    pass


def decode_proof(b):
    """flag:u8 (0 no leaf, 1 leaf) [key_hash:32 value_hash:32] count:u16 BE (<= 256) sibling:32 × count."""
    if len(b) < 1:
        raise BadProof("empty")
    flag, pos = b[0], 1
    if flag == 0:
        leaf = None
    elif flag == 1:
        if len(b) < 65:
            raise BadProof("truncated leaf")
        leaf, pos = (b[1:33], b[33:65]), 65
    else:
        raise BadProof(f"leaf flag {flag:#04x}")
    if len(b) < pos + 2:
        raise BadProof("truncated count")
    (count,) = struct.unpack(">H", b[pos : pos + 2])
    pos += 2
    if count > 256:
        raise BadProof(f"{count} siblings")
    if len(b) != pos + 32 * count:
        raise BadProof(f"{len(b)} bytes, expected {pos + 32 * count}")
    return leaf, [b[pos + 32 * i : pos + 32 * (i + 1)] for i in range(count)]


def verify_proof(root, key, value_hash, proof):
    """Verifies `proof` (bytes) for key hash `key`: present with `value_hash`, or absent if None."""
    leaf, siblings = decode_proof(proof)
    n = len(siblings)
    if value_hash is not None:
        if leaf is None or leaf[0] != key or leaf[1] != value_hash:
            raise BadProof("the leaf is not the key's with that value")
    elif leaf is not None:
        if leaf[0] == key:
            raise BadProof("the key is present")
        if common_prefix_bits(leaf[0], key) < n:
            raise BadProof("the leaf is not on the key's path")
    h = leaf_hash(*leaf) if leaf else PLACEHOLDER
    for i, sibling in enumerate(siblings):
        h = internal_hash(sibling, h) if bit(key, n - 1 - i) else internal_hash(h, sibling)
    if h != root:
        raise BadProof(f"gives root {h.hex()}")


def check(state):
    """Returns (errors, root computed from the fields)."""
    errors = []
    values = {}  # (kind, key) -> value
    leaves = {}  # key_hash -> value_hash
    chains = 0
    for i, it in enumerate(state["items"]):
        kind = it["kind_number"]
        if kind not in KINDS or KINDS[kind][0] != it["kind"]:
            errors.append(f"item {i}: kind {kind} {it['kind']!r} is not in section 5")
            continue
        name, builder = KINDS[kind]
        chains += kind == 0
        key, value = builder(it["fields"])
        where = f"item {i} ({name} {key.hex()})"
        for what, built in [("key", key), ("value", value)]:
            if built.hex() != it[what]:
                errors.append(f"{where}: built {what} {built.hex()}, vector has {it[what]}")
        kh, vh = key_hash(kind, key), blake3(value).digest()
        if kh.hex() != it["key_hash"]:
            errors.append(f"{where}: key hash {kh.hex()}, vector has {it['key_hash']}")
        if vh.hex() != it["value_hash"]:
            errors.append(f"{where}: value hash {vh.hex()}, vector has {it['value_hash']}")
        if (kind, key) in values or kh in leaves:
            errors.append(f"{where}: a second item with this key")
            continue
        values[(kind, key)] = value
        leaves[kh] = vh
    if chains != 1:
        errors.append(f"{chains} chain items, expected 1")
    root = tree_root(leaves.items())

    for i, p in enumerate(state.get("proofs", [])):
        where = f"proof {i} ({p['kind']} {p['key']})"
        kind, key = p["kind_number"], bytes.fromhex(p["key"])
        kh = key_hash(kind, key)
        if kh.hex() != p["key_hash"]:
            errors.append(f"{where}: key hash {kh.hex()}, vector has {p['key_hash']}")
        value = None if p["value"] is None else bytes.fromhex(p["value"])
        if value != values.get((kind, key)):
            errors.append(f"{where}: the value is not the item's (or the item's absence)")
        vh = None if value is None else blake3(value).digest()
        proof = bytes.fromhex(p["proof"])
        try:
            verify_proof(root, kh, vh, proof)
        except BadProof as e:
            errors.append(f"{where}: does not verify: {e}")
        for j in range(len(proof)):
            bad = bytearray(proof)
            bad[j] ^= 1
            try:
                verify_proof(root, kh, vh, bytes(bad))
                errors.append(f"{where}: still verifies with byte {j} changed")
            except BadProof:
                pass
    return errors, root


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
        except (KeyError, ValueError, TypeError, IndexError, struct.error) as e:
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
            n, m = len(state["items"]), len(state.get("proofs", []))
            print(f"ok   {state['name']}: {n} items, {m} proofs, root {state['root']}")
    if passed + failed == 0:
        print(f"error: {path} holds no states", file=sys.stderr)
        return 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
