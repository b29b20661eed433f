// The operator page as an operator finds it, in Chromium with playwright-core: it follows the
// chain without a reload (its height moves with the blocks), shows the inventory as a table in
// credits with each pool's use, its leases with time left and provisioning status, and its
// peers by name with rounded scores; the operator ends a lease early with a reason, and drains a
// pool for maintenance (buyers see the window) and puts it back, and withdraws a market's
// offers and offers it again.
// Environment (scripts/browser-test sets it): SURPLUS_UI (node 0), SURPLUS_DEVNET (dc1's
// operator token, a sample buyer's key), SURPLUS_BIN (its bid), CHROMIUM, ARTIFACTS, NODE_PATH. Exit 0 on success, 1 with a message.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";

import { harness } from "./lib/harness.mjs";
import { cliLease } from "./lib/node-api.mjs";

const { fail, log, until, check, ui, origin, artifacts, launch } =
  harness("operator-live", { totalMs: 180_000 });
const browser = await launch();
const errors = [];
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => errors.push(e.message));
  const token = readFileSync(path.join(process.env.SURPLUS_DEVNET, "dc1", "operator.token"), "utf8").trim();
  await page.goto(`${ui}#/operator?token=${token}`, { waitUntil: "load" });
  const tid = (id) => page.locator(`[data-testid="${id}"]`);
  await tid("inventory-table").waitFor();
  const heightOf = async () => Number(/Height (\d+)/.exec(await tid("operator-height").textContent())?.[1]);
  const before = await heightOf();

  // A block: the faucet funds a fresh account.
  const account = randomBytes(32).toString("hex");
  const r = await fetch(`${origin}/api/v1/faucet`, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ account }) });
  if (!r.ok) throw new Error(`the faucet answered ${r.status}: ${await r.text()}`);
  const after = await until("the operator page to show a later height (no reload)", async () => {
    const h = await heightOf();
    return h > before ? h : null;
  });
  check(after > before, `the operator page followed the chain from height ${before} to ${after} without a reload`);

  const pools = await page.locator('[data-testid="pool-row"]').count();
  check(pools > 0, `the inventory is a table of ${pools} pools`);
  const invText = await tid("inventory-table").textContent();
  check(/cr \/ slot-hour/.test(invText) && !/"reserve"/.test(invText), "reserves are in credits per slot-hour, not raw JSON");
  const peers = await page.locator('[data-testid="peer-row"]').allTextContents();
  check(peers.length === 3 && peers.every((p) => /dc[2-4]/.test(p)), `the peers are named (${peers.map((p) => p.slice(0, 3)).join(", ")})`);
  const scores = await page.locator('[data-testid="peer-row"] td:last-child').allTextContents();
  check(scores.every((s) => s === "—" || /^-?\d+\.\d{2}$/.test(s)), `peer scores are rounded (${scores.join(", ")})`);
  await page.screenshot({ path: path.join(artifacts, "operator.png"), fullPage: true });

  // The operator ends a lease early, saying why: the row follows, with the reason.
  const lease = await cliLease(origin, 1);
  const row = page.locator(`[data-testid="operator-lease"][data-lease="${lease}"]`);
  await until("the new lease on the operator page", async () => (await row.getAttribute("data-status")) === "active");
  await until("its start hook's outcome", async () => /start ok/.test(await row.textContent()));
  check(true, "a lease row shows its time left and its start hook's outcome");
  await row.locator("summary").click();
  await row.locator('[data-testid="terminate-reason"]').fill("disk replacement in rack 4");
  await row.locator('[data-testid="terminate-submit"]').click();
  await until("the lease to show it ended early, with the reason", async () =>
    (await row.getAttribute("data-status")) === "terminated_by_provider" &&
    /ended early by the operator: disk replacement in rack 4/.test(await row.textContent()));
  check(true, `lease ${lease.slice(0, 10)}… ended early from the operator page, with its reason shown`);
  await page.screenshot({ path: path.join(artifacts, "operator-ended.png"), fullPage: true });

  // The operator drains a pool from its inventory row (after the notice period, the default),
  // buyers see the window on the markets table, and the operator puts the pool back.
  const poolRow = page.locator('[data-testid="pool-row"]').last();
  const pool = await poolRow.getAttribute("data-pool");
  const poolMarket = await poolRow.getAttribute("data-market");
  await poolRow.locator('[data-testid="pool-drain"] summary').click();
  await poolRow.locator('[data-testid="drain-reason"]').fill("firmware update on the host");
  await poolRow.locator('[data-testid="drain-submit"]').click();
  await until("the pool's row to show its window", async () =>
    (await page.locator(`[data-testid="pool-row"][data-pool="${pool}"]`).getAttribute("data-drained")) === "true");
  const drainedRow = page.locator(`[data-testid="pool-row"][data-pool="${pool}"]`);
  check(/firmware update on the host/.test(await drainedRow.textContent()), `pool ${pool} is drained from the operator page, with its reason`);
  await page.screenshot({ path: path.join(artifacts, "operator-drained.png"), fullPage: true });
  const buyerPage = await page.context().newPage();
  await buyerPage.goto(`${ui}#/buyer`, { waitUntil: "load" });
  const cell = buyerPage.locator(`[data-testid="market-row"][data-market="${poolMarket}"] [data-testid="market-maintenance"]`);
  await until("the window on the buyer's markets table", async () => (await cell.textContent()).includes(pool));
  check(/firmware update on the host/.test(await cell.textContent()), `buyers see ${pool}'s window on the markets table before they bid`);
  await buyerPage.close();
  await drainedRow.locator('[data-testid="drain-done"]').click();
  await until("the pool back on the market", async () =>
    (await page.locator(`[data-testid="pool-row"][data-pool="${pool}"]`).getAttribute("data-drained")) === "false");
  check(true, `pool ${pool} is back on the market from the operator page`);

  // The operator withdraws a market's offers (they leave the live offers), then offers it again.
  const offerRow = page.locator('[data-testid="operator-offer"]').first();
  const offerMarket = await offerRow.getAttribute("data-market");
  await offerRow.locator('[data-testid="offer-withdraw"]').click();
  const me = (await (await fetch(`${origin}/api/v1/status`)).json()).public_key;
  const freeOffered = async () => {
    const book = await (await fetch(`${origin}/api/v1/book?market=${encodeURIComponent(offerMarket)}`)).json();
    return book.offers.orders.filter((o) => o.author === me).reduce((n, o) => n + Number(o.free), 0);
  };
  await until("the market's free offers withdrawn", async () => (await freeOffered()) === 0
    && (await page.locator(`[data-testid="withdrawn-markets"] li[data-market="${offerMarket}"]`).count()) === 1);
  check(true, `${offerMarket}'s offers are withdrawn from the operator page`);
  await page.locator(`[data-testid="withdrawn-markets"] li[data-market="${offerMarket}"] [data-testid="offers-restore"]`).click();
  await until("the market offered again", async () => (await freeOffered()) > 0);
  check(true, `${offerMarket} is offered again`);
  if (errors.length) throw new Error(`the page reported errors:\n  ${errors.join("\n  ")}`);
  log("PASS");
} catch (e) {
  await browser.close().catch(() => {});
  fail(e.message);
}
await browser.close();
process.exit(0);
