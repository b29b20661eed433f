// What every Chromium browser test starts with: its name in messages, a bounded whole run, the
// artifacts directory, the UI of the node it uses, and Chromium itself.

import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { until as untilOf } from "./node-api.mjs";

/**
 * Sets up test `name`: `fail(message)` exits 1, `log(message)`, `until(what, probe, ms, every)`
 * (bounded polling, `stepMs` by default), `check(ok, what)`, `ui` (node `node`'s UI from SURPLUS_NODES, else
 * SURPLUS_UI), `origin`, `artifacts`, and `launch()` for headless Chromium. The whole run is
 * bounded by `totalMs`.
 */
export function harness(name, { node = 0, stepMs = 60_000, totalMs = 240_000 } = {}) {
  const fail = (m) => {
    console.error(`${name}: FAIL: ${m}`);
    process.exit(1);
  };
  const log = (m) => console.log(`${name}: ${m}`);
  const nodes = JSON.parse(process.env.SURPLUS_NODES ?? "[]");
  const ui = nodes.length > node ? `${nodes[node].replace(/\/$/, "")}/` : process.env.SURPLUS_UI;
  if (!ui) fail("SURPLUS_NODES or SURPLUS_UI must be set: run this through scripts/browser-test");
  const artifacts = process.env.ARTIFACTS ?? path.resolve(`target/browser-artifacts/${name}`);
  mkdirSync(artifacts, { recursive: true });
  const until = (what, probe, ms = stepMs, every = 250) => untilOf(what, probe, ms, every);
  const watchdog = setTimeout(() => fail(`the test took longer than ${totalMs / 1000} s`), totalMs);
  watchdog.unref();
  const require = createRequire(import.meta.url);
  const launch = () => require("playwright-core").chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
    timeout: stepMs,
  });
  /** Throws `what` unless `ok`; logs it as checked otherwise. */
  const check = (ok, what) => {
    if (!ok) throw new Error(what);
    log(`ok: ${what}`);
  };
  return { fail, log, until, check, ui, origin: new URL(ui).origin, artifacts, launch, require };
}
