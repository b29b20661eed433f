import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

// Every UI module parses as an ES module and every file it serves is registered in ui.rs.
test("every UI file is registered in web/src/ui.rs and every module parses", async () => {
  const dir = new URL("../", import.meta.url);
  const served = readFileSync(new URL("../../src/ui.rs", import.meta.url), "utf8");
  for (const f of readdirSync(dir).filter((f) => /\.(js|css|html)$/.test(f))) {
    assert.ok(served.includes(`include_str!("../ui/${f}")`), `${f} is not in ui.rs FILES`);
    if (f.endsWith(".js") && f !== "app.js") await import(new URL(f, dir));
  }
  // app.js runs against a document; compile it as a module without running it.
  const vm = await import("node:vm");
  if (vm.SourceTextModule) {
    new vm.SourceTextModule(readFileSync(new URL("app.js", dir), "utf8"));
  } else {
    // Without --experimental-vm-modules: the module body parses as an async function body once
    // its import/export lines are removed.
    const body = readFileSync(new URL("app.js", dir), "utf8")
      .replace(/^import[\s\S]*?from "[^"]+";$/gm, "");
    assert.doesNotThrow(() => new (async () => {}).constructor(body));
  }
});
