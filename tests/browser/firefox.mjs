// The buyer flow of buyer-flow.mjs, in Firefox (headless Firefox ESR, driven by puppeteer-core
// over WebDriver BiDi; Playwright cannot drive a stock Firefox):
//   open node 1's UI → create a key in the browser (WebCrypto Ed25519) → get faucet credits →
//   bid on a market where node 2 offers capacity → the lease appears live → fetch its
//   credential on node 1, which is not its provider (the page opens the copy sealed to its key,
//   WebCrypto X25519) → a bid too low to fill is listed live in two tabs and removed live from
//   both after its cancel → the page fits 390 px → the lease is renewed and its new credential
//   fetched → node 1's operator page follows the chain live, with its pools' drain forms → the
//   auditor page verifies the lease's inclusion proof (PASS). axe-core finds no serious or
//   critical violation on the buyer page without a key and with a lease, the operator page,
//   the verify result, the auditor's block list and a block page.
// It uses node 1's UI and faucet and node 2's markets, so it neither shares a market nor a
// faucet with buyer-flow.mjs, which uses node 0 on the same devnet. It also checks that no
// request leaves the node's origin and that the page reports no error.
//
// Environment (scripts/browser-test sets it): SURPLUS_NODES (JSON array of every node's API base
// URL; node 1's is used, or SURPLUS_UI's node when there is only one), SURPLUS_UI, FIREFOX (the
// browser executable, default /usr/bin/firefox-esr), ARTIFACTS (directory for screenshots),
// NODE_PATH (holding puppeteer-core and axe-core). Every wait is bounded; the whole run too (270 s).
// Exit status 0 on success, 1 with a message otherwise.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { nodeApi as apiOf, pickMarket as pickMarketOf, until as untilOf } from "./lib/node-api.mjs";

const STEP_MS = 45_000;
const TOTAL_MS = 270_000; // under scripts/browser-test's 300 s per test, so this message comes first

function fail(message) {
  console.error(`firefox: FAIL: ${message}`);
  process.exit(1);
}
const log = (m) => console.log(`firefox: ${m}`);

const require = createRequire(import.meta.url);
let puppeteer;
try {
  puppeteer = require("puppeteer-core");
} catch {
  fail("cannot load puppeteer-core: npm install --prefix DIR puppeteer-core, then set NODE_PATH=DIR/node_modules");
}

let nodes = [];
try {
  nodes = JSON.parse(process.env.SURPLUS_NODES ?? "[]");
} catch {
  fail(`SURPLUS_NODES is not a JSON array: ${process.env.SURPLUS_NODES}`);
}
const UI = nodes.length > 1 ? `${nodes[1].replace(/\/$/, "")}/` : process.env.SURPLUS_UI;
if (!UI) fail("neither SURPLUS_NODES (2+ nodes) nor SURPLUS_UI is set: run this through scripts/browser-test");
const origin = new URL(UI).origin;
const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve("target/browser-artifacts/firefox");
mkdirSync(ARTIFACTS, { recursive: true });
const FIREFOX = process.env.FIREFOX ?? "/usr/bin/firefox-esr";

const nodeApi = (p) => apiOf(origin, p);
const until = (what, probe, ms = STEP_MS, every = 500) => untilOf(what, probe, ms, every);
// The capacity is node 2's, so the credential is fetched on a node that is not the lease's
// provider (node 1 serves the copy sealed to the buyer, which the page opens).
const providerOrigin = nodes.length > 2 ? new URL(nodes[2]).origin : origin;
const pickMarket = () => pickMarketOf(providerOrigin);

const watchdog = setTimeout(() => fail(`the flow took longer than ${TOTAL_MS / 1000} s`), TOTAL_MS);
watchdog.unref();

let browser;
try {
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    timeout: STEP_MS, // to start
    protocolTimeout: STEP_MS, // per protocol call
    defaultViewport: { width: 1440, height: 900 },
  });
} catch (e) {
  fail(`cannot start ${FIREFOX} through puppeteer-core (WebDriver BiDi): ${e.message}`);
}
let step = 0;
let page;
const foreign = [];
const errors = [];
try {
  log(`${await browser.version()} on ${UI}`);
  page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== origin && !["data:", "blob:", "about:"].includes(u.protocol)) foreign.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message ?? e}`));
  page.on("console", (m) => {
    // A 4xx answer the UI handles (e.g. a credential not minted yet) may be logged as a failed
    // load; server errors are caught below from the responses themselves.
    if (m.type() === "error" && !/status of 4\d\d|\b4\d\d\b/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 500) errors.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  const shot = async (name) => {
    step += 1;
    const file = path.join(ARTIFACTS, `firefox-${String(step).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`step ${step}: ${name} (${file})`);
  };
  const tid = (id) => `[data-testid="${id}"]`;
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => "");
  const attr = (sel, name) => page.$eval(sel, (e, n) => e.getAttribute(n), name).catch(() => null);
  // puppeteer's own waits (waitForSelector, locators) build their predicates with `new Function`
  // inside the page, which Firefox reports as a CSP violation of the UI's strict policy (its
  // Chromium path is exempt). So this test polls with plain evaluations instead.
  /** The element `sel` once it is attached and visible (bounded). */
  const visible = (sel, ms = STEP_MS) => until(`${sel} to be visible`, async () => {
    const h = await page.$(sel);
    if (h && await h.evaluate((e) => e.isConnected && e.getClientRects().length > 0 &&
      getComputedStyle(e).visibility !== "hidden")) return h;
    await h?.dispose();
    return null;
  }, ms, 200);
  const click = async (sel) => {
    const h = await visible(sel);
    await h.click();
    await h.dispose();
  };
  /** Types `value` into an emptied input, as a person would. */
  const fill = async (sel, value) => {
    const h = await visible(sel);
    await h.evaluate((e) => { e.value = ""; e.focus(); });
    await h.type(value);
    await h.dispose();
  };

  // axe-core in a page: its source is evaluated through WebDriver BiDi, which the UI's
  // Content-Security-Policy does not govern.
  const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  const axe = async (p, state) => {
    if (!(await p.evaluate("typeof window.axe !== 'undefined'"))) await p.evaluate(axeSource);
    const found = await p.evaluate(
      "window.axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations" +
      ".filter((v) => v.impact === 'serious' || v.impact === 'critical')" +
      ".map((v) => `${v.id} (${v.impact}): ${v.help} on ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`))");
    if (found.length) throw new Error(`axe on ${state}:\n  ${found.join("\n  ")}`);
    log(`axe: no serious or critical violation on ${state}`);
  };

  // 1. A new buyer opens the UI.
  await page.goto(UI, { waitUntil: "load" });
  await visible(tid("key-generate"));
  await shot("open");
  await axe(page, "the buyer page without a key");

  // 2. Creates a key in the browser (WebCrypto Ed25519 in Firefox).
  await click(tid("key-generate"));
  const account = await until("the new key's public half", async () => {
    const t = await text(tid("key-public"));
    return /^[0-9a-f]{64}$/.test(t) ? t : null;
  }, 15_000, 250).catch(async (e) => {
    const said = await text(`${tid("key-panel")} .msg.error`);
    throw new Error(`the UI shows no public key after "Create a new key"${said ? `; it says: "${said}"` : `: ${e.message}`}`);
  });
  await shot("key");

  // 3. Is funded by the faucet of node 1.
  await click(tid("faucet"));
  const faucetText = await until("the faucet's answer", () => text(tid("faucet-status")));
  if (!/Granted/.test(faucetText)) throw new Error(`the faucet refused: ${faucetText}`);
  const funds = await until("credits on the balance", async () => {
    const units = await attr(tid("balance"), "data-units");
    return units && BigInt(units) > 0n ? BigInt(units) : null;
  }, 60_000);
  await shot("funded");

  // 4. Places a bid that matches an offer of node 2.
  const pick = await until("an offer of node 2 in the book", pickMarket, 30_000, 1000);
  const limit = (pick.reserve * 5n) / 4n;
  if (limit > funds) throw new Error(`the faucet's ${funds} units do not pay 1 slot-hour at ${limit}`);
  log(`bidding on ${pick.market}: 1 slot for 1 hour at up to ${limit} units (reserve ${pick.reserve})`);
  await click(`[data-testid="market-row"][data-market="${pick.market}"] [data-testid="market-select"]`);
  await visible(tid("history-chart"));
  await visible(tid("depth-chart"));
  await page.select(tid("bid-market"), pick.market);
  await fill(tid("bid-slots"), "1");
  await fill(tid("bid-hours"), "1");
  const credits = `${limit / 1_000_000n}.${(limit % 1_000_000n).toString().padStart(6, "0")}`;
  await fill(tid("bid-limit"), credits);
  await page.select(tid("bid-fill"), "all_or_none");
  const total = await until("the form's total", async () => {
    const t = await attr(tid("bid-total"), "data-units");
    return t === String(limit) ? t : null;
  }, 5_000, 250).catch(async () => {
    throw new Error(`the form shows a total of ${await attr(tid("bid-total"), "data-units")} units, ${limit} expected`);
  });
  log(`form total ${total} units`);
  await until("the live event stream", async () => (await attr(tid("events-status"), "data-state")) === "live");
  await shot("bid-form");
  await click(tid("bid-submit"));
  const bidText = await until("the bid's acceptance", async () => {
    const t = await text(tid("bid-status"));
    return /Bid placed|not placed/.test(t) ? t : null;
  });
  if (!/Bid placed/.test(bidText)) throw new Error(bidText);
  await shot("bid-placed");

  // 5. Sees the lease appear live (pushed by the event stream; no reload).
  await visible(tid("lease-row"), 90_000);
  const lease = await attr(tid("lease-row"), "data-lease");
  if (!lease) throw new Error("the lease row carries no data-lease");
  const row = `[data-testid="lease-row"][data-lease="${lease}"]`;
  log(`lease ${lease}`);
  await shot("lease");

  // 6. Fetches its credential (retrying while the provider has not minted it yet).
  const token = await until("the lease's credential", async () => {
    await click(`${row} [data-testid="lease-credential"]`);
    await visible(`${row} [data-testid="credential-token"], ${row} [data-testid="credential-error"]`, 15_000);
    const got = await text(`${row} [data-testid="credential-token"]`);
    if (got) return got;
    const err = await text(`${row} [data-testid="credential-error"]`);
    if (!/not minted|next block/i.test(err)) throw Object.assign(new Error(err), { fatal: true });
    return null;
  }, 45_000, 2000);
  if (!/^[A-Za-z0-9_=-]{16,}$/.test(token)) throw new Error(`the credential does not look like a token: ${token}`);
  await shot("credential");

  // 6b. My orders follows the event stream: a bid too low to fill is listed as resting without
  //     a reload, and its cancel removes it; the route is titled.
  const title = await page.title();
  if (!/Markets and bids · Surplus/.test(title)) throw new Error(`the buyer page is titled "${title}"`);
  await fill(tid("bid-limit"), "0.000001");
  await click(tid("bid-submit"));
  const order = await until("the low bid's acceptance", async () => {
    const t = await text(tid("bid-status"));
    if (/not placed/.test(t)) throw Object.assign(new Error(t), { fatal: true });
    return /Bid placed/.test(t) ? attr(tid("bid-status"), "data-order") : null;
  });
  const orderRow = `[data-testid="order-row"][data-order="${order}"]`;
  await until("the bid listed as resting (no reload)", async () => (await attr(orderRow, "data-status")) === "resting", 60_000);
  // A second tab of the same buyer (the key is the origin's) lists it too, and sees the cancel
  // made in the first.
  const tab2 = await browser.newPage();
  tab2.on("pageerror", (e) => errors.push(`page error (second tab): ${e.message ?? e}`));
  await tab2.goto(UI, { waitUntil: "load" });
  const inTab2 = () => tab2.$eval(orderRow, (e) => e.getAttribute("data-status")).catch(() => null);
  await until("the bid in the second tab", async () => (await inTab2()) === "resting", 60_000);
  await page.bringToFront();
  await click(`${orderRow} [data-testid="order-cancel"]`);
  await until("the cancelled bid to leave the list (no reload)", async () => !(await page.$(orderRow)), 60_000);
  await until("the cancelled bid to leave the second tab (no reload)", async () => (await inTab2()) === null, 60_000);
  await tab2.close();
  await shot("order-cancelled");
  log(`bid ${order} listed live in two tabs and removed live from both after its cancel`);

  // 6c. At 390 px (a phone) the page fits the screen's width.
  await page.setViewport({ width: 390, height: 844 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (wide > 0) throw new Error(`at 390 px the buyer page scrolls sideways by ${wide} px`);
  await shot("narrow");
  await page.setViewport({ width: 1440, height: 900 });

  // 6d. Renews the lease by an hour: its end moves (no reload), the provider issues a new
  //     credential, and "Get credential" then gives that one.
  const endBefore = Number(await attr(row, "data-end"));
  await click(`${row} [data-testid="lease-renew"]`);
  await until("the renewal to commit", async () => Number(await attr(row, "data-end")) > endBefore, 90_000);
  const renewed = await until("the renewed lease's credential", async () => {
    await click(`${row} [data-testid="lease-credential"]`);
    await visible(`${row} [data-testid="credential-token"], ${row} [data-testid="credential-error"], ${row} [data-testid="credential-reissued"]`, 15_000);
    const got = await text(`${row} [data-testid="credential-token"]`);
    return got && got !== token ? got : null;
  }, 90_000, 2000);
  if (!/^[A-Za-z0-9_=-]{16,}$/.test(renewed)) throw new Error(`the renewed credential does not look like a token: ${renewed}`);
  await shot("renewed");
  log(`renewed: the lease ends ${Number(await attr(row, "data-end")) - endBefore} ms later, with a new credential`);

  // 6e. The operator page of node 1 follows the chain without a reload, and lists its pools
  //     with their drain forms and its live offers with Withdraw.
  const devnet = process.env.SURPLUS_DEVNET;
  if (devnet && nodes.length > 1) {
    const token1 = readFileSync(path.join(devnet, "dc2", "operator.token"), "utf8").trim();
    const op = await browser.newPage();
    op.on("pageerror", (e) => errors.push(`page error (operator): ${e.message ?? e}`));
    await op.goto(`${UI}#/operator?token=${token1}`, { waitUntil: "load" });
    const height = () => op.$eval(tid("operator-height"), (e) => Number(/Height (\d+)/.exec(e.textContent)?.[1]))
      .catch(() => null);
    const before = await until("the operator page", height, 30_000);
    const fresh = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
    await fetch(`${origin}/api/v1/faucet`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ account: fresh }) });
    const after = await until("a later height on the operator page (no reload)", async () => {
      const h = await height();
      return h > before ? h : null;
    }, 60_000);
    const pools = await op.$$eval('[data-testid="pool-row"]', (r) => r.length);
    const drains = await op.$$eval('[data-testid="pool-drain"]', (r) => r.length);
    if (!pools || drains !== pools) throw new Error(`the operator page lists ${pools} pools with ${drains} drain forms`);
    await op.screenshot({ path: path.join(ARTIFACTS, "firefox-operator.png"), fullPage: true });
    await axe(op, "the operator page");
    log(`the operator page followed the chain from ${before} to ${after}; ${pools} pools, each with its drain form`);
    await op.close();
  }

  // 7. The auditor page verifies the lease's inclusion proof in the browser.
  await click(`${row} [data-testid="lease-verify"]`);
  const result = await until("the proof verification", async () => {
    const r = await attr(tid("verify-result"), "data-result");
    return ["pass", "fail"].includes(r) ? r : null;
  }, 45_000);
  await shot("verified");
  if (result !== "pass") {
    throw new Error(`the proof of lease ${lease} did not verify: ${await text(tid("verify-result"))}`);
  }
  const checks = await page.$$eval("ul.checks li", (li) => li.map((x) => x.dataset.check));
  for (const c of ["inclusion", "header", "checkpoint signature", "certificate"]) {
    if (!checks.includes(c)) throw new Error(`the verification did not check ${c} (checked: ${checks})`);
  }

  // 7b. axe-core: the verify result and the buyer page with its lease.
  await axe(page, "the verify result");
  await page.goto(`${UI}#/auditor`, { waitUntil: "load" });
  await visible(tid("block-row"));
  await axe(page, "the auditor's block list");
  const blockLink = await attr(tid("block-row"), "data-height");
  await page.goto(`${UI}#/auditor/block/${blockLink}`, { waitUntil: "load" });
  await until("the block page", async () => /Block \d+/.test(await page.title()) ? true : null);
  await axe(page, `the page of block ${blockLink}`);
  await page.goto(UI, { waitUntil: "load" });
  await visible(row);
  await axe(page, "the buyer page with a lease");

  // 8. Everything stayed on the node's origin, and nothing went wrong in the page.
  if (foreign.length) throw new Error(`requests left ${origin}: ${foreign.join(", ")}`);
  if (errors.length) throw new Error(`the page reported errors:\n  ${errors.join("\n  ")}`);
  log(`PASS (account ${account}, lease ${lease}, ${step} screenshots in ${ARTIFACTS})`);
} catch (e) {
  if (page) {
    await Promise.race([
      page.screenshot({ path: path.join(ARTIFACTS, "firefox-failure.png"), fullPage: true }),
      new Promise((r) => setTimeout(r, 10_000)),
    ]).catch(() => {});
  }
  await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10_000))]).catch(() => {});
  const extra = errors.length ? `\npage errors:\n  ${errors.join("\n  ")}` : "";
  fail(`${e.message}${extra}`);
}
await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10_000))]).catch(() => {});
process.exit(0);
