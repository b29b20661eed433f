// What a first-time buyer meets before the first trade, in Chromium with playwright-core:
//   - the route is titled; the form opens on a market with a free slot, with a limit that fills
//     there, and says what the market offers;
//   - "Create a new key" leaves focus on saving the key; the faucet says when a key had its
//     credits; a public key pasted as a key is refused with a reason;
//   - a limit past the bounds (a 10^9-credit price) or past the balance is refused before
//     signing, in credits; a reload keeps the chosen market and limit;
//   - "Forget key" in one tab signs the other tab out at once.
// Environment (scripts/browser-test sets it): SURPLUS_NODES (node 3's UI, which no other test
// uses), SURPLUS_UI, SURPLUS_DEVNET (a funded sample buyer's public key), CHROMIUM, ARTIFACTS,
// NODE_PATH. Every wait is bounded; the whole run too. Exit 0 on success, 1 with a message.

import { readFileSync } from "node:fs";
import path from "node:path";

import { harness } from "./lib/harness.mjs";
import { nodeApi as apiOf } from "./lib/node-api.mjs";

const STEP_MS = 30_000;
const { fail, log, until, check, ui: UI, origin, launch } =
  harness("buyer-basics", { node: 3, stepMs: STEP_MS, totalMs: 240_000 });

const browser = await launch();
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const open = async (name) => {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
    page.on("dialog", (d) => d.accept());
    await page.goto(UI, { waitUntil: "load" });
    await page.waitForFunction(() => document.getElementById("app")?.dataset.ready === "true");
    return page;
  };
  const a = await open("tab A");
  const tid = (id, p = a) => p.locator(`[data-testid="${id}"]`);

  // The route's title; the form's market has a free slot and its limit fills there.
  check(/Markets and bids · Surplus/.test(await a.title()), `the buyer page is titled (${await a.title()})`);
  const markets = await apiOf(origin, "markets");
  const market = await tid("bid-market").inputValue();
  const m = markets.find((x) => x.market === market);
  check(m && m.free_slots > 0, `the form opens on a market with a free slot (${market}: ${m?.free_slots} free)`);
  const limit = await tid("bid-limit").inputValue();
  const units = BigInt(limit.split(".")[0]) * 1_000_000n + BigInt((limit.split(".")[1] ?? "").padEnd(6, "0"));
  check(units >= BigInt(m.lowest_free_reserve), `its limit ${limit} cr fills there (lowest free reserve ${m.lowest_free_reserve} units)`);
  check(/free slot/.test(await tid("bid-market-hint").textContent()), "the form says what the market offers");

  // A public key pasted as a key is refused: a funded sample buyer's account.
  const devnet = JSON.parse(readFileSync(path.join(process.env.SURPLUS_DEVNET, "devnet.json"), "utf8"));
  await tid("key-import-text").fill(devnet.buyers[0].public_key);
  await tid("key-import").click();
  await until("the refusal of a public key", async () =>
    /public key/.test(await tid("key-panel").locator(".msg").textContent()));
  check((await tid("key-public").count()) === 0, "a public key pasted as a key is refused, with the reason");

  // A new key: focus goes to saving it.
  await tid("key-generate").click();
  await tid("key-public").waitFor();
  await until("focus on the key download", async () =>
    (await a.evaluate(() => document.activeElement?.dataset?.testid)) === "key-download");
  check(true, "after \"Create a new key\" focus is on \"Download key file\"");

  // The faucet: once, and it says so.
  await tid("faucet").click();
  await until("the faucet's grant", async () => /Granted/.test(await tid("faucet-status").textContent()));
  check((await tid("faucet").textContent()) === "Sample credits received" && await tid("faucet").isDisabled(),
    "the spent faucet button says why it is disabled");
  await until("the credits", async () => BigInt((await tid("balance").getAttribute("data-units")) ?? "0") > 0n, 60_000);
  // The form, which said the balance was short, rechecks on its own once the credits arrive.
  await until("the form to take the new balance", async () => !(await tid("bid-submit").isDisabled()));
  check(true, "the bid form rechecks the balance when the credits arrive");

  // Out of bounds, or past the balance: refused before signing, in credits.
  await tid("bid-limit").fill("1000000000");
  check(/at most 1,000,000 credits/.test(await tid("bid-total").textContent()) && await tid("bid-submit").isDisabled(),
    "a 10^9-credit limit is refused before signing");
  await tid("bid-slots").fill("1000");
  await tid("bid-hours").fill("1000");
  await tid("bid-limit").fill("10");
  check(/your balance is/.test(await tid("bid-total").textContent()) && await tid("bid-submit").isDisabled(),
    `a bid past the balance is refused before signing ("${await tid("bid-total").textContent()}")`);

  // A reload keeps the market and the limit.
  const other = markets.find((x) => x.market !== market)?.market;
  await a.locator(`[data-testid="market-row"][data-market="${other}"] [data-testid="market-select"]`).click();
  await tid("bid-slots").fill("1");
  await tid("bid-hours").fill("1");
  await tid("bid-limit").fill("0.123");
  await a.reload({ waitUntil: "load" });
  await a.waitForFunction(() => document.getElementById("app")?.dataset.ready === "true");
  check((await tid("bid-market").inputValue()) === other && (await tid("bid-limit").inputValue()) === "0.123",
    "a reload keeps the chosen market and limit");

  // "Forget key" in tab A signs tab B out.
  const b = await open("tab B");
  await tid("key-public", b).waitFor();
  await tid("key-forget").click();
  await until("tab B to forget the key", async () =>
    (await tid("key-public", b).count()) === 0 && (await tid("key-generate", b).count()) === 1);
  check(true, "\"Forget key\" in one tab signs the other out");
  if (errors.length) throw new Error(`the pages reported errors:\n  ${errors.join("\n  ")}`);
  log("PASS");
} catch (e) {
  await browser.close().catch(() => {});
  fail(`${e.message}${errors.length ? `\n  ${errors.join("\n  ")}` : ""}`);
}
await browser.close();
process.exit(0);
