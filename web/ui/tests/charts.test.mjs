import { test } from "node:test";
import assert from "node:assert/strict";
import { depthChart, lineChart } from "../charts.js";

// Just enough of a DOM for the charts: elements with attributes, children and text.
class FakeElement {
  constructor(name) {
    this.name = name;
    this.attrs = {};
    this.children = [];
    this.textContent = "";
  }
  setAttribute(k, v) {
    this.attrs[k] = v;
  }
  append(...c) {
    this.children.push(...c);
  }
  all(name) {
    return [this, ...this.children.flatMap((c) => c.all(name))].filter((e) => e.name === name);
  }
}
const doc = { createElementNS: (_ns, name) => new FakeElement(name) };

test("the line chart draws one path through every point", () => {
  const svg = lineChart([{ x: 0, y: 1 }, { x: 10, y: 3 }, { x: 20, y: 2 }], { title: "t" }, doc);
  const paths = svg.all("path");
  assert.equal(paths.length, 1);
  assert.equal(paths[0].attrs.d.split("L").length, 3);
  assert.ok(!paths[0].attrs.d.includes("NaN"));
  assert.equal(svg.all("circle").length, 3);
});

test("an empty chart says so", () => {
  const svg = lineChart([], { empty: "no trade yet" }, doc);
  assert.ok(svg.all("text").some((t) => t.textContent === "no trade yet"));
  assert.equal(svg.all("path").length, 0);
});

test("the depth chart draws both sides, cumulatively", () => {
  const svg = depthChart([{ price: 3, slots: 2 }, { price: 2, slots: 5 }],
    [{ price: 4, slots: 1 }], {}, doc);
  const classes = svg.all("path").map((p) => p.attrs.class);
  assert.deepEqual(classes, ["bids", "offers"]);
  for (const p of svg.all("path")) assert.ok(!p.attrs.d.includes("NaN"));
  // A single price on one side still draws.
  const one = depthChart([], [{ price: 4, slots: 1 }], {}, doc);
  assert.ok(!one.all("path")[0].attrs.d.includes("NaN"));
});
