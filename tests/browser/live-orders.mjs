// "My orders" follows the event stream in every tab, in Chromium with playwright-core:
//   tab A creates a key and gets faucet credits → tab B opens the same UI (the key is shared
//   through localStorage) → tab A places a bid too low to fill → both tabs list it as resting
//   without a reload → tab B cancels it → both tabs drop it, and say it was cancelled.
// Environment (scripts/browser-test sets it): SURPLUS_NODES (node 2's UI is used, so this test
// shares neither a faucet nor a page with the other tests), SURPLUS_UI, CHROMIUM, ARTIFACTS,
// NODE_PATH. Every wait is bounded; the whole run too. Exit 0 on success, 1 with a message.

import path from "node:path";

import { harness } from "./lib/harness.mjs";

const { fail, log, until, ui: UI, artifacts: ARTIFACTS, launch } =
  harness("live-orders", { node: 2, totalMs: 240_000 });
const STEP_MS = 60_000;
const browser = await launch();
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const open = async (name) => {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => errors.push(`${name}: page error: ${e.message}`));
    await page.goto(UI, { waitUntil: "load" });
    return page;
  };
  const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

  // Tab A: a new key, funded by the faucet.
  const a = await open("tab A");
  await tid(a, "key-generate").click();
  const account = (await tid(a, "key-public").textContent()).trim();
  await tid(a, "faucet").click();
  await until("faucet credits", async () => {
    const units = await tid(a, "balance").getAttribute("data-units");
    return units && BigInt(units) > 0n;
  }, 90_000);
  // Tab B: the same UI, the same key (kept in this browser's localStorage).
  const b = await open("tab B");
  await until("tab B to load the key", async () =>
    (await tid(b, "key-public").count()) && (await tid(b, "key-public").textContent()).trim() === account);
  for (const p of [a, b]) {
    await until("the live event stream", async () => (await tid(p, "events-status").getAttribute("data-state")) === "live");
  }

  // Tab A places a bid at 1 unit per slot-hour: no offer is that cheap, so it rests.
  const market = await tid(a, "bid-market").inputValue();
  await tid(a, "bid-slots").fill("1");
  await tid(a, "bid-hours").fill("1");
  await tid(a, "bid-limit").fill("0.000001");
  await tid(a, "bid-fill").selectOption("all_or_none");
  await tid(a, "bid-submit").click();
  await until("the bid's acceptance", async () => /Bid placed|not placed/.test(await tid(a, "bid-status").textContent()));
  const said = await tid(a, "bid-status").textContent();
  if (!/Bid placed/.test(said)) throw new Error(said);
  const order = await tid(a, "bid-status").getAttribute("data-order");
  log(`bid ${order} on ${market} placed at 1 unit`);
  const row = (p) => p.locator(`[data-testid="order-row"][data-order="${order}"]`);
  for (const [p, name] of [[a, "tab A"], [b, "tab B"]]) {
    await until(`${name} to list the bid as resting`, async () =>
      (await row(p).count()) === 1 && (await row(p).getAttribute("data-status")) === "resting");
  }
  await a.screenshot({ path: path.join(ARTIFACTS, "live-orders-1-resting.png"), fullPage: true });
  log("both tabs list the resting bid (no reload)");

  // Tab B cancels it: both tabs drop it and say so.
  await row(b).locator('[data-testid="order-cancel"]').click();
  for (const [p, name] of [[a, "tab A"], [b, "tab B"]]) {
    await until(`${name} to drop the cancelled bid`, async () =>
      (await row(p).count()) === 0 &&
      (await p.locator(`[data-testid="order-changes"] li[data-order="${order}"][data-status="cancelled"]`).count()) === 1);
  }
  await a.screenshot({ path: path.join(ARTIFACTS, "live-orders-2-cancelled.png"), fullPage: true });
  log("both tabs dropped the bid and say it was cancelled (no reload)");
  if (errors.length) throw new Error(`the pages reported errors:\n  ${errors.join("\n  ")}`);
  log("PASS");
} catch (e) {
  await browser.close().catch(() => {});
  fail(`${e.message}${errors.length ? `\n  ${errors.join("\n  ")}` : ""}`);
}
await browser.close();
process.exit(0);
