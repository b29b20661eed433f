import { test } from "node:test";
import assert from "node:assert/strict";
import { blake3, taggedHash } from "../blake3.js";
import { importFromNodePath } from "./npm.mjs";

const { blake3: reference } = await importFromNodePath("@noble/hashes/blake3.js");
const hex = (b) => Buffer.from(b).toString("hex");

test("blake3 matches @noble/hashes across chunk and block boundaries", () => {
  const lengths = [0, 1, 2, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2048, 2049, 3072, 4096, 5000,
    8193, 33_000];
  for (const n of lengths) {
    const input = new Uint8Array(n);
    for (let i = 0; i < n; i++) input[i] = (i * 7 + (n & 0xff)) % 251;
    assert.equal(hex(blake3(input)), hex(reference(input)), `length ${n}`);
  }
});

test("blake3 of the empty input is the published value", () => {
  assert.equal(
    hex(blake3(new Uint8Array(0))),
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  );
});

test("tagged hash prefixes the tag with its length", () => {
  const body = new Uint8Array([1, 2, 3]);
  const tag = "surplus/entry-id/v1";
  const manual = new Uint8Array([tag.length, ...new TextEncoder().encode(tag), 1, 2, 3]);
  assert.equal(hex(taggedHash(tag, body)), hex(reference(manual)));
});
