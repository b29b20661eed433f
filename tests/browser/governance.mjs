// Governance in the browser (docs/governance.md), headless Chromium against the devnet: the
// auditor page shows the validator set of a chosen height and every set change; a proposal made
// with `surplus gov propose` by node 1's key appears on node 0's operator page with its tally,
// and the operator's "Vote yes" signs node 0's vote with its node key, which the chain records.
// The proposal stays short of quorum (1 of 4) and expires: the other tests see no change.
//
// Environment (scripts/browser-test sets it): SURPLUS_UI, SURPLUS_NODES, SURPLUS_DEVNET,
// SURPLUS_BIN, CHROMIUM, ARTIFACTS, NODE_PATH.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { nodeApi, until } from "./lib/node-api.mjs";

const { chromium } = createRequire(import.meta.url)("playwright-core");
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through scripts/browser-test`);
  return v;
};
const ui = env("SURPLUS_UI");
const origin = new URL(ui).origin;
const nodes = JSON.parse(env("SURPLUS_NODES"));
const devnet = JSON.parse(readFileSync(path.join(env("SURPLUS_DEVNET"), "devnet.json"), "utf8"));
const log = (m) => console.log(`governance: ${m}`);
const STEP_MS = 60_000;

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), headless: true, args: ["--no-sandbox"] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`uncaught exception: ${e.message}`));

  // The auditor page: the set of the next block, and every set the ledger put in force.
  const gov = await nodeApi(origin, "governance");
  await page.goto(`${ui}#/auditor`);
  const rows = page.locator('[data-testid="set-table"] tbody tr');
  await until("the validator set on the auditor page", async () => (await rows.count()) === gov.validators.length, STEP_MS);
  for (const v of gov.validators) {
    assert.ok(await page.locator(`[data-testid="set-table"] [title="${v.key}"]`).count(), `validator ${v.key} is listed`);
  }
  assert.ok(await page.locator('[data-testid="set-history"] tbody tr').count() >= 1, "the set history is listed");
  // Another height, chosen in the form.
  await page.fill('[data-testid="set-height"]', "1");
  await page.click('[data-testid="set-show"]');
  await until("the set of block 1", async () => (await page.textContent('[data-testid="set-at-height"]')).includes("Block 1 is decided"), STEP_MS);
  log(`auditor page: ${gov.validators.length} validators at ${gov.height + 1} and at block 1`);

  // Node 1 proposes, with the CLI and its node key.
  const fee = gov.params.fee_bps;
  const out = execFileSync(env("SURPLUS_BIN"), [
    "gov", "propose", "set-fees", "--fee-bps", String(fee + 5), "--penalty-bps", String(gov.params.penalty_bps),
    "--voting-blocks", "5000", "--key", path.join(devnet.nodes[1].data_dir, "node.key"), "--node", nodes[1], "--json",
  ]);
  const id = JSON.parse(out.toString()).id;
  await until("the proposal in a block", () => nodeApi(origin, `governance/proposals/${id}`).catch(() => null), STEP_MS);
  log(`proposal ${id.slice(0, 10)}… made by node 1`);

  // Node 0's operator votes yes from the operator page.
  const token = readFileSync(path.join(devnet.nodes[0].data_dir, "operator.token"), "utf8").trim();
  await page.goto(`${ui}#/operator?token=${token}`);
  const row = page.locator(`[data-testid="operator-proposals"] tr[data-proposal="${id}"]`);
  await until("the proposal on the operator page", async () => (await row.count()) === 1, STEP_MS);
  assert.match(await row.textContent(), /fee .* bps/);
  await row.locator('[data-testid="vote-yes"]').click();
  await until("the vote's confirmation", async () => /submitted: yes/.test(await page.textContent('[data-testid="operator-vote-result"]')), STEP_MS);
  const me = (await nodeApi(origin, "status")).public_key;
  await until("node 0's vote in a block", async () => {
    const p = await nodeApi(origin, `governance/proposals/${id}`);
    return p.voters.find((v) => v.key === me)?.vote === true;
  }, STEP_MS);
  await page.screenshot({ path: path.join(env("ARTIFACTS"), "operator-governance.png"), fullPage: true });
  assert.deepEqual(errors, [], "the pages had uncaught exceptions");
  log("node 0 voted yes from its operator page, with its node key");
} finally {
  await browser.close();
}
