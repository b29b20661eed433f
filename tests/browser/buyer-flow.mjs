// Browser flow of a new buyer, driven through Chromium with playwright-core:
//   open the UI → create a key → get sample credits from the faucet → bid on a market where
//   node 0 (the UI's node) offers capacity → the lease appears live → fetch its credential →
//   fetch it again on node 1's UI (not the provider's) → renew the lease and get its new
//   credential → the auditor page verifies the lease's inclusion proof in the browser.
// It also checks that no request leaves the node's origin and that the page logs no error.
//
// Environment (scripts/browser-test sets it): SURPLUS_UI (node 0's base URL), SURPLUS_NODES
// (JSON array of every node's API base URL; node 1's UI is used in step 7), CHROMIUM (the browser
// executable), ARTIFACTS (directory for screenshots), NODE_PATH (holding playwright-core);
// optionally SURPLUS_BUYER_KEY (a funded key file to import instead of using the faucet).
// Every wait is bounded; the whole run too. Exit status 0 on success, 1 with a message otherwise.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { nodeApi as apiOf, pickMarket as pickMarketOf, until as untilOf } from "./lib/node-api.mjs";

const STEP_MS = 60_000;
const TOTAL_MS = 270_000; // under scripts/browser-test's 300 s per test, so this message comes first

const require = createRequire(import.meta.url);
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch {
  fail("cannot load playwright-core: npm install --prefix DIR playwright-core, then set NODE_PATH=DIR/node_modules");
}

const UI = process.env.SURPLUS_UI;
if (!UI) fail("SURPLUS_UI is not set: the base URL of node 0's web UI, e.g. http://127.0.0.1:7702/");
const origin = new URL(UI).origin;
const ARTIFACTS = process.env.ARTIFACTS ?? path.resolve("target/browser-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

function fail(message) {
  console.error(`buyer-flow: FAIL: ${message}`);
  process.exit(1);
}

const log = (m) => console.log(`buyer-flow: ${m}`);

const nodeApi = (p) => apiOf(origin, p);
const until = (what, probe, ms = STEP_MS, every = 500) => untilOf(what, probe, ms, every);
const pickMarket = () => pickMarketOf(origin);

const watchdog = setTimeout(() => fail(`the flow took longer than ${TOTAL_MS / 1000} s`), TOTAL_MS);
watchdog.unref();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu"],
  timeout: STEP_MS,
});
let step = 0;
let page;
const foreign = [];
const errors = [];
let shedding = false;
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== origin && !["data:", "blob:"].includes(u.protocol)) foreign.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // A 4xx answer the UI handles (e.g. a credential not minted yet) is logged by Chromium as a
    // failed resource load; server errors are caught below from the responses themselves.
    // The 503s this test injects to shed the bid (step 4) are logged the same way.
    if (m.type() === "error" && !/status of (4\d\d|503)/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    // Except the 503 `overloaded` answers this test injects (step 4).
    const injected = r.status() === 503 && r.headers()["retry-after"] === "1" && r.request().method() === "POST" && shedding;
    if (r.status() >= 500 && !injected) errors.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  const shot = async (name) => {
    step += 1;
    const file = path.join(ARTIFACTS, `buyer-flow-${String(step).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`step ${step}: ${name} (${file})`);
  };
  const tid = (id) => page.locator(`[data-testid="${id}"]`);

  // 1. A new buyer opens the UI.
  await page.goto(UI, { waitUntil: "load" });
  await tid("key-generate").waitFor();
  await shot("open");

  // 2. Creates a key (or, with SURPLUS_BUYER_KEY, imports that funded key file instead of
  //    creating one and asking the faucet: for nodes without a faucet).
  const keyFile = process.env.SURPLUS_BUYER_KEY;
  if (keyFile) {
    await tid("key-import-text").fill(readFileSync(keyFile, "utf8"));
    await tid("key-import").click();
  } else {
    await tid("key-generate").click();
  }
  // The key file the page offers (kept to sign in on another node's UI in step 7).
  const download = page.waitForEvent("download");
  await tid("key-download").click();
  const seedText = readFileSync(await (await download).path(), "utf8");
  const account = (await tid("key-public").textContent()).trim();
  if (!/^[0-9a-f]{64}$/.test(account)) throw new Error(`the UI shows no public key (got "${account}")`);
  await shot("key");

  // 3. Is funded by the faucet.
  if (!keyFile) {
    await tid("faucet").click();
    await until("the faucet's answer", async () => (await tid("faucet-status").textContent()).trim());
    const faucetText = await tid("faucet-status").textContent();
    if (!/Granted/.test(faucetText)) throw new Error(`the faucet refused: ${faucetText}`);
  }
  const funds = await until("credits on the balance", async () => {
    const units = await tid("balance").getAttribute("data-units");
    return units && BigInt(units) > 0n ? BigInt(units) : null;
  }, 90_000);
  await shot("funded");

  // 4. Places a bid that matches an offer of node 0.
  const pick = await until("an offer of node 0 in the book", pickMarket);
  const limit = (pick.reserve * 5n) / 4n;
  if (limit > funds) throw new Error(`the faucet's ${funds} units do not pay 1 slot-hour at ${limit}`);
  log(`bidding on ${pick.market}: 1 slot for 1 hour at up to ${limit} units (reserve ${pick.reserve})`);
  await page.locator(`[data-testid="market-row"][data-market="${pick.market}"] [data-testid="market-select"]`).click();
  await tid("history-chart").waitFor();
  await tid("depth-chart").waitFor();
  await tid("bid-market").selectOption(pick.market);
  await tid("bid-slots").fill("1");
  await tid("bid-hours").fill("1");
  const credits = `${limit / 1_000_000n}.${(limit % 1_000_000n).toString().padStart(6, "0")}`;
  await tid("bid-limit").fill(credits);
  await tid("bid-fill").selectOption("all_or_none");
  const total = await tid("bid-total").getAttribute("data-units");
  if (total !== String(limit)) throw new Error(`the form shows a total of ${total} units, ${limit} expected`);
  await until("the live event stream", async () => (await tid("events-status").getAttribute("data-state")) === "live");
  await shot("bid-form");
  // The node sheds the first two submissions: 503 `overloaded` with Retry-After, injected at the
  // network boundary (a real shed needs a load this shared devnet must not carry; the node's
  // side is tested in tests/tests/hostile_http.rs). The UI says it is busy, waits and sends again.
  let shed = 0;
  shedding = true;
  await page.route("**/api/v1/entries", async (route) => {
    if (route.request().method() === "POST" && shed < 2) {
      shed++;
      await route.fulfill({
        status: 503,
        headers: { "retry-after": "1", "content-type": "application/json" },
        body: JSON.stringify({ error: { code: "overloaded", message: "this node sheds load (injected by the test)" } }),
      });
    } else {
      await route.continue();
    }
  });
  await tid("bid-submit").click();
  await until("the busy line while the node sheds", async () => await tid("busy").isVisible());
  log(`busy line: ${await tid("busy").textContent()}`);
  await until("the bid's acceptance", async () => /Bid placed|not placed/.test(await tid("bid-status").textContent()));
  const bidText = await tid("bid-status").textContent();
  if (!/Bid placed/.test(bidText)) throw new Error(bidText);
  await page.unroute("**/api/v1/entries");
  shedding = false;
  if (shed !== 2) throw new Error(`the UI sent the bid ${shed + 1} times, not 3 (twice shed, then taken)`);
  if (await tid("busy").isVisible()) throw new Error("the busy line stays after the bid was taken");
  log("the bid, shed twice with Retry-After, was sent again and placed; the busy line came and went");
  await shot("bid-placed");

  // 5. Sees the lease appear live (pushed by the event stream; no reload).
  const row = page.locator('[data-testid="lease-row"]').first();
  await row.waitFor({ timeout: 90_000 });
  const lease = await row.getAttribute("data-lease");
  log(`lease ${lease}`);
  await shot("lease");

  // 6. Fetches its credential (retrying while the provider has not minted it yet).
  const token = await until("the lease's credential", async () => {
    await row.locator('[data-testid="lease-credential"]').click();
    const got = row.locator('[data-testid="credential-token"], [data-testid="credential-error"]');
    await got.first().waitFor({ timeout: 15_000 });
    if (await row.locator('[data-testid="credential-token"]').count()) {
      return (await row.locator('[data-testid="credential-token"]').textContent()).trim();
    }
    const err = await row.locator('[data-testid="credential-error"]').textContent();
    if (!/not minted|next block/i.test(err)) throw Object.assign(new Error(err), { fatal: true });
    return null;
  }, 60_000, 2000);
  if (!/^[A-Za-z0-9_=-]{16,}$/.test(token)) throw new Error(`the credential does not look like a token: ${token}`);
  await row.locator('[data-testid="credential-copy"]').click();
  await shot("credential");

  // 7. The same buyer on another node's UI (node 1: not the lease's provider, which does not
  //    hold the token) gets the same credential in one click: the page opens the copy sealed
  //    to its key that every node serves with the lease.
  const nodes = JSON.parse(process.env.SURPLUS_NODES ?? "[]");
  if (nodes.length < 2) throw new Error("SURPLUS_NODES lists fewer than 2 nodes");
  const otherOrigin = new URL(nodes[1]).origin;
  const other = await context.newPage();
  other.on("pageerror", (e) => errors.push(`page error (node 1): ${e.message}`));
  await other.goto(`${otherOrigin}/`, { waitUntil: "load" });
  await other.locator('[data-testid="key-import-text"]').fill(seedText);
  await other.locator('[data-testid="key-import"]').click();
  const otherRow = other.locator(`[data-testid="lease-row"][data-lease="${lease}"]`);
  await otherRow.waitFor({ timeout: 60_000 });
  await otherRow.locator('[data-testid="lease-credential"]').click();
  const otherToken = other.locator('[data-testid="credential-token"]');
  await other.locator('[data-testid="credential-token"], [data-testid="credential-error"]').first().waitFor();
  if (!(await otherToken.count())) {
    throw new Error(`node 1's UI gave no credential: ${await other.locator('[data-testid="credential-error"]').first().textContent()}`);
  }
  const tokenThere = (await otherToken.first().textContent()).trim();
  if (tokenThere !== token) throw new Error(`node 1's UI shows another token than node 0's:\n${tokenThere}\n${token}`);
  await other.screenshot({ path: path.join(ARTIFACTS, "buyer-flow-credential-on-node-1.png"), fullPage: true });
  log(`the credential, fetched on node 1's UI (${otherOrigin}), is node 0's`);
  await other.close();

  // 7b. Renews the lease by an hour: its end moves, the provider issues a new credential, and
  //     "Get credential" then gives that one, not the old.
  const endBefore = Number(await row.getAttribute("data-end"));
  await row.locator('[data-testid="lease-renew"]').click();
  await until("the renewal to commit", async () => Number(await row.getAttribute("data-end")) > endBefore, 90_000);
  await until("the new credential's grant", async () =>
    (await row.locator('[data-testid="credential-reissued"]').count()) > 0, 90_000);
  const renewed = await until("the renewed lease's credential", async () => {
    await row.locator('[data-testid="lease-credential"]').click();
    await row.locator('[data-testid="credential-token"], [data-testid="credential-error"]').first().waitFor();
    const t = row.locator('[data-testid="credential-token"]');
    return (await t.count()) ? (await t.textContent()).trim() : null;
  }, 60_000, 2000);
  if (renewed === token) throw new Error("after the renewal the page still hands out the old credential");
  await shot("renewed-credential");
  log(`renewed: the lease ends ${Number(await row.getAttribute("data-end")) - endBefore} ms later, with a new credential`);

  // 8. The auditor page verifies the lease's inclusion proof in the browser.
  await row.locator('[data-testid="lease-verify"]').click();
  const result = tid("verify-result");
  await until("the proof verification", async () =>
    ["pass", "fail"].includes(await result.getAttribute("data-result")), 60_000);
  await shot("verified");
  if ((await result.getAttribute("data-result")) !== "pass") {
    throw new Error(`the proof of lease ${lease} did not verify: ${await result.innerText()}`);
  }
  const checks = await page.locator("ul.checks li").evaluateAll((li) => li.map((x) => x.dataset.check));
  for (const c of ["inclusion", "header", "checkpoint signature", "certificate"]) {
    if (!checks.includes(c)) throw new Error(`the verification did not check ${c} (checked: ${checks})`);
  }

  // 8b. The trust anchor: with this node's genesis hash pinned, the verification checks it and
  //     lists the validator set of the block with the keys that signed; with another chain's
  //     pinned, it fails.
  const genesis = (await tid("node-genesis").textContent()).trim();
  const rerun = async (pin, want) => {
    await tid("genesis-pin").fill(pin);
    await tid("genesis-pin-save").click();
    await tid("verify-run").click();
    await until(`the verification with genesis ${pin.slice(0, 8)}… pinned`, async () =>
      (await result.getAttribute("data-result")) === want);
    return page.locator('ul.checks li[data-check="genesis"]').getAttribute("data-ok");
  };
  if ((await rerun(genesis, "pass")) !== "true") throw new Error("the pinned genesis was not checked");
  const signed = await page.locator('[data-testid="verify-validator"][data-signed="true"]').count();
  const set = await page.locator('[data-testid="verify-validator"]').count();
  if (set !== 4 || signed < 3) throw new Error(`the result lists ${set} validators, ${signed} signed`);
  if ((await rerun("00".repeat(32), "fail")) !== "false") throw new Error("another chain's genesis did not fail");
  await shot("genesis-mismatch");
  await tid("genesis-pin-clear").click();
  log(`genesis ${genesis} pinned: PASS with ${signed} of ${set} validators signed; another pinned: FAIL`);

  // 9. Everything stayed on the node's origin, and nothing went wrong in the page.
  if (foreign.length) throw new Error(`requests left ${origin}: ${foreign.join(", ")}`);
  if (errors.length) throw new Error(`the page reported errors:\n  ${errors.join("\n  ")}`);
  log(`PASS (account ${account}, lease ${lease}, ${step} screenshots in ${ARTIFACTS})`);
} catch (e) {
  if (page) {
    await page.screenshot({ path: path.join(ARTIFACTS, "buyer-flow-failure.png"), fullPage: true })
      .catch(() => {});
  }
  await browser.close().catch(() => {});
  const extra = errors.length ? `\npage errors:\n  ${errors.join("\n  ")}` : "";
  fail(`${e.message}${extra}`);
}
await browser.close();
process.exit(0);
