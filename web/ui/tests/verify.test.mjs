import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { inclusionRoot, verifyBundle } from "../verify.js";

// Written by web/tests/it/ui_fixture.rs from a real small ledger.
const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/proof-bundle.json", import.meta.url), "utf8"),
);
const opts = { validators: fixture.validators, leaseId: fixture.lease };
const copy = () => structuredClone(fixture.bundle);
const flipHex = (h, at = 0) =>
  h.slice(0, at) + ((parseInt(h[at], 16) ^ 1).toString(16)) + h.slice(at + 1);

test("the fixture bundle verifies, every check passing", async () => {
  const r = await verifyBundle(copy(), opts);
  assert.ok(r.ok, JSON.stringify(r.checks, null, 1));
  assert.deepEqual(r.checks.map((c) => c.name),
    ["entry", "lease", "inclusion", "header", "checkpoint signature", "certificate"]);
  assert.equal(r.entryId, fixture.lease);
});

const tampered = {
  "entry byte": (b) => { b.entry = flipHex(b.entry, b.entry.length - 1); },
  "audit path hash": (b) => { b.path[0] = flipHex(b.path[0]); },
  "audit path length": (b) => { b.path.pop(); },
  "entry index": (b) => { b.entry_index += 1; },
  "checkpoint root": (b) => { b.checkpoint.root = flipHex(b.checkpoint.root); },
  "header timestamp": (b) => { b.header.timestamp_ms += 1; },
  "checkpoint header hash": (b) => { b.checkpoint.header_hash = flipHex(b.checkpoint.header_hash); },
  "checkpoint signature": (b) => { b.signature = flipHex(b.signature, 10); },
  "certificate signature": (b) => {
    b.certificate.signatures[0].signature = flipHex(b.certificate.signatures[0].signature, 4);
  },
  "certificate below quorum": (b) => { b.certificate.signatures.splice(0, 2); },
  "certificate repeated signer": (b) => {
    b.certificate.signatures[1] = { ...b.certificate.signatures[0] };
  },
  "certificate round": (b) => { b.certificate.round += 1; },
  "format": (b) => { b.format = "something-else"; },
};

for (const [what, tamper] of Object.entries(tampered)) {
  test(`a tampered ${what} fails`, async () => {
    const b = copy();
    tamper(b);
    const r = await verifyBundle(b, opts);
    assert.equal(r.ok, false, `${what}: ${JSON.stringify(r.checks)}`);
    assert.ok(r.checks.some((c) => !c.ok && c.detail));
  });
}

test("another validator set fails the certificate", async () => {
  const validators = [...fixture.validators].reverse();
  const r = await verifyBundle(copy(), { ...opts, validators });
  assert.equal(r.ok, false);
  assert.equal(r.checks.find((c) => c.name === "certificate").ok, false);
});

test("the quorum is voting power when powers are given", async () => {
  // Validators 1, 2 and 3 sign with power 3 of 12 (validator 0 holds 9): no quorum.
  const b = copy();
  b.certificate.signatures.splice(0, 1);
  const heavy = await verifyBundle(b, { ...opts, powers: [9, 1, 1, 1] });
  const cert = heavy.checks.find((c) => c.name === "certificate");
  assert.equal(cert.ok, false);
  assert.match(cert.detail, /voting power 3, a quorum of 9/);
  // With powers 1, 3, 3 and 5 all four pass, and validators 1, 2 and 3 alone hold 11 of 12.
  const light = await verifyBundle(copy(), { ...opts, powers: [1, 3, 3, 5] });
  assert.ok(light.ok, JSON.stringify(light.checks, null, 1));
  const b2 = copy();
  b2.certificate.signatures.splice(0, 1);
  const r = await verifyBundle(b2, { ...opts, powers: [1, 3, 3, 5] });
  assert.ok(r.ok, JSON.stringify(r.checks, null, 1));
  assert.match(r.checks.find((c) => c.name === "certificate").detail, /power 11 of 12/);
  // Powers that do not match the validators are refused.
  const odd = await verifyBundle(copy(), { ...opts, powers: [1, 1] });
  assert.equal(odd.checks.find((c) => c.name === "certificate").ok, false);
});

test("another lease id fails", async () => {
  const r = await verifyBundle(copy(), { ...opts, leaseId: "00".repeat(32) });
  assert.equal(r.ok, false);
});

test("an index outside the tree is refused", () => {
  assert.throws(() => inclusionRoot(new Uint8Array(32), 5, 5, []), /not below/);
});
