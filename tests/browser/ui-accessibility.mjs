// Accessibility: axe-core's rules (WCAG 2.x A and AA and best practices) on every page and state
// of the UI, in headless Chromium: the buyer page without and with a key, the operator page
// with its token, the auditor list, a block page and a lease's verify result. No violation of
// impact "serious" or "critical" may remain; each is printed with its rule, help and elements.
// Then, at 390 px wide (a phone), the buyer, operator and auditor pages must not scroll sideways.
// axe.min.js is injected into the page, which the UI's Content-Security-Policy forbids: this
// test's browser context bypasses the policy (bypassCSP), which only the test does.
//
// Environment (scripts/browser-test sets it): SURPLUS_UI, SURPLUS_NODES, SURPLUS_DEVNET (dc1's
// operator token), SURPLUS_BIN (a bid through the CLI when the devnet holds no lease yet),
// CHROMIUM, ARTIFACTS, NODE_PATH (playwright-core, axe-core). Exit 0 on success, 1 otherwise.

import { readFileSync } from "node:fs";
import path from "node:path";

import { harness } from "./lib/harness.mjs";
import { cliLease, nodeApi as apiOf } from "./lib/node-api.mjs";

const STEP_MS = 60_000;
const { fail, log, until: untilStep, origin, artifacts: ARTIFACTS, launch, require } =
  harness("ui-accessibility", { stepMs: STEP_MS, totalMs: 270_000 });
const until = (what, probe, ms = STEP_MS, every = 500) => untilStep(what, probe, ms, every);
const axePath = require.resolve("axe-core/axe.min.js");
const DEVNET = process.env.SURPLUS_DEVNET;
const nodeApi = (p) => apiOf(origin, p);

/** A lease to verify: one of the devnet's, or one made now by a sample buyer through the CLI. */
async function aLease() {
  const have = await nodeApi("leases?limit=1");
  return have.leases?.length ? have.leases[0].id : cliLease(origin, 2);
}

const browser = await launch();
const found = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const tid = (id) => page.locator(`[data-testid="${id}"]`);
  const ready = () => page.waitForFunction(() => document.getElementById("app")?.dataset.ready === "true");

  /** Runs axe on the page as it is; records serious and critical violations as `state`. */
  async function check(state) {
    if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) {
      await page.addScriptTag({ path: axePath });
    }
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
    for (const v of bad) {
      found.push(`${state}: ${v.id} (${v.impact}): ${v.help}\n      ${v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join("\n      ")}`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, `${state}.png`), fullPage: true });
    log(`${state}: ${result.violations.length} violation(s), ${bad.length} serious or critical`);
  }
  const visit = async (hash, state, wait) => {
    await page.goto(`${origin}/${hash}`, { waitUntil: "load" });
    await ready();
    if (wait) await wait();
    await check(state);
  };

  await visit("#/buyer", "buyer-without-key", () => tid("key-generate").waitFor());
  await tid("key-generate").click();
  await tid("key-public").waitFor();
  await page.waitForFunction(() => document.getElementById("app")?.dataset.ready === "true");
  await check("buyer-with-key");
  const token = readFileSync(path.join(DEVNET, "dc1", "operator.token"), "utf8").trim();
  await visit(`#/operator?token=${token}`, "operator");
  await visit("#/auditor", "auditor-list");
  const height = (await nodeApi("status")).height;
  await visit(`#/auditor/block/${Math.max(1, height - 1)}`, "block-page");
  const lease = await aLease();
  await visit(`#/auditor/verify/${lease}`, "verify-result", () => until("the verification", async () =>
    ["pass", "fail"].includes(await tid("verify-result").getAttribute("data-result"))));

  // On a 390 px phone the pages fit the screen's width: no horizontal scroll of the page.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, state] of [["#/buyer", "narrow-buyer"], [`#/operator?token=${token}`, "narrow-operator"],
    ["#/auditor", "narrow-auditor"]]) {
    await page.goto(`${origin}/${hash}`, { waitUntil: "load" });
    await ready();
    const wide = await page.evaluate(() => {
      const w = document.documentElement.clientWidth;
      if (document.documentElement.scrollWidth <= w) return null;
      // The outermost elements that stick out, to name in the failure.
      const out = [...document.querySelectorAll("body *")].filter((e) => {
        const r = e.getBoundingClientRect();
        return r.right > w + 1 && !e.closest(".scroll") && !(e.parentElement?.getBoundingClientRect().right > w + 1);
      });
      return `${document.documentElement.scrollWidth} px wide (viewport ${w}): ${out.slice(0, 6)
        .map((e) => `${e.tagName.toLowerCase()}${e.dataset.testid ? `[data-testid=${e.dataset.testid}]` : ""}${e.id ? `#${e.id}` : ""}.${e.className}`).join(", ")}`;
    });
    await page.screenshot({ path: path.join(ARTIFACTS, `${state}.png`), fullPage: true });
    if (wide) found.push(`${state}: the page scrolls sideways at 390 px: ${wide}`);
    else log(`${state}: fits 390 px`);
  }
  if (found.length) throw new Error(`serious or critical accessibility violations:\n  ${found.join("\n  ")}`);
  log("PASS: no serious or critical violation on any page");
} catch (e) {
  await browser.close().catch(() => {});
  fail(e.message);
}
await browser.close();
process.exit(0);
