// Supervision as buyers and operators see it, in Chromium with playwright-core, on a devnet of
// its own whose supervision interval is 5 s (`surplus devnet --probe-interval-secs 5`; the
// shared devnet of scripts/browser-test keeps the default): a sample buyer's key imported into
// node 0's UI, a lease of node 0 (dc1) bid through the CLI, and then
//   - the buyer's lease shows its Supervision part, without a reload: the probe target the
//     devnet's hook names (dc1's own http://127.0.0.1:PORT/healthz, an HTTP probe), the
//     measured availability, the time found down, "Service credits" and the market's promise;
//   - the operator page of dc1, opened from the link the devnet prints (it carries the operator
//     token), lists the lease in its Supervision section with its probe target, and shows the
//     provider bond next to the balance;
//   - the "Status" link of the navigation opens the server's /status page, which has the
//     headings "Blocks and validators", "Providers' availability" and "Incidents".
// axe-core runs on the buyer page, the operator page and /status: no violation of impact serious
// or critical may remain (each is printed with its rule and elements). As ui-accessibility.mjs,
// the browser context bypasses the pages' Content-Security-Policy to inject axe.
//
// Environment (scripts/browser-test sets it): SURPLUS_BIN (the devnet and the CLI bid),
// CHROMIUM, ARTIFACTS, NODE_PATH (playwright-core, axe-core). Every wait is bounded, the whole
// run too; the devnet is stopped on exit (SIGINT, then SIGKILL after 30 s). Exit 0 on success,
// 1 with a message (the devnet's directory is then kept and its nodes' logs printed).

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { harness } from "./lib/harness.mjs";
import { cliLease, nodeApi } from "./lib/node-api.mjs";

const NODES = 4;
const { log, until, check, artifacts, launch, require } =
  harness("supervision", { stepMs: 60_000, totalMs: 285_000 });
const axePath = require.resolve("axe-core/axe.min.js");
const BIN = process.env.SURPLUS_BIN;

let devnet = null;
let devnetDir = null;

/** Whether 127.0.0.1:`port` is free for TCP and for UDP (a node uses both). */
const tcpFree = (port) => new Promise((resolve) => {
  const s = net.createServer();
  s.once("error", () => resolve(false));
  s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
});
const udpFree = (port) => new Promise((resolve) => {
  const s = dgram.createSocket("udp4");
  s.once("error", () => {
    try {
      s.close();
    } catch {
      // Never bound.
    }
    resolve(false);
  });
  s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
});

/** The first port of a free range of `span` ports (best effort: bound, then released). */
async function freeBase(span) {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20_000 + Math.floor(Math.random() * (40_000 - span));
    let free = true;
    for (let k = 0; k < span && free; k++) free = (await tcpFree(base + k)) && (await udpFree(base + k));
    if (free) return base;
  }
  throw new Error("no free port range for the devnet");
}

/** The pids devnet.json names while its nodes run (0 for one it is restarting). */
function nodePids() {
  try {
    return JSON.parse(readFileSync(path.join(devnetDir, "devnet.json"), "utf8")).nodes.map((n) => n.pid).filter(Boolean);
  } catch {
    return [];
  }
}

/** Kills the devnet's nodes that outlived it (only processes started in its directory). */
function killLeftNodes() {
  for (const pid of nodePids()) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(devnetDir)) process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

const running = () => devnet && devnet.exitCode === null && devnet.signalCode === null;

/** Stops the devnet: SIGINT (it stops its nodes), SIGKILL after 30 s. */
async function stopDevnet() {
  if (!devnet) return;
  if (running()) {
    const exited = new Promise((resolve) => devnet.once("exit", () => resolve(true)));
    devnet.kill("SIGINT");
    const gone = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!gone) {
      log("the devnet did not stop within 30 s of SIGINT; killing it");
      devnet.kill("SIGKILL");
    }
  }
  killLeftNodes();
  devnet = null;
}

// Whatever ends this process (a failure, the whole-run bound, scripts/browser-test's timeout),
// the devnet is told to stop.
process.on("exit", () => {
  if (running()) devnet.kill("SIGINT");
});
process.on("SIGTERM", () => process.exit(143));
process.on("SIGINT", () => process.exit(130));

/** Prints the end of each node's log and where the devnet's files stay. */
function nodeLogs() {
  if (!devnetDir) return;
  for (let i = 1; i <= NODES; i++) {
    const file = path.join(devnetDir, `dc${i}`, "node.log");
    if (!existsSync(file)) continue;
    console.error(`---- last 30 lines of ${file}`);
    console.error(readFileSync(file, "utf8").split("\n").slice(-31).join("\n"));
  }
  console.error(`supervision: the devnet's files are kept in ${devnetDir}`);
}

/** Starts the devnet; its node 0's API origin and the operator link it printed. */
async function startDevnet() {
  if (!BIN) throw new Error("SURPLUS_BIN is not set: run this through scripts/browser-test");
  devnetDir = mkdtempSync(path.join(os.tmpdir(), "surplus-supervision-"));
  const base = await freeBase(10 * NODES + 3);
  const out = path.join(devnetDir, "devnet.log");
  const fd = openSync(out, "a");
  // Blocks every 200 ms when there is work and at least every second, as scripts/browser-test
  // runs its devnet; supervision intervals of 5 s.
  devnet = spawn(BIN, ["devnet", "--nodes", String(NODES), "--data-dir", devnetDir, "--base-port", String(base),
    "--batch-interval-ms", "200", "--heartbeat-ms", "1000", "--probe-interval-secs", "5"],
  { stdio: ["ignore", fd, fd] });
  closeSync(fd);
  log(`devnet starting in ${devnetDir} on ports from ${base}`);
  const link = await until("the devnet's operator link", async () => {
    if (!running()) {
      const e = new Error(`the devnet exited: ${readFileSync(out, "utf8").slice(-2000)}`);
      e.fatal = true;
      throw e;
    }
    return /^Operator page of dc1: (\S+#\/operator\?token=[0-9a-f]{64})$/m.exec(readFileSync(out, "utf8"))?.[1];
  }, 150_000);
  const apis = JSON.parse(readFileSync(path.join(devnetDir, "devnet.json"), "utf8")).nodes.map((n) => n.api);
  for (const api of apis) {
    await until(`${api} to commit a block`, async () => (await nodeApi(api, "status")).height >= 1, 60_000);
  }
  log(`devnet up: ${apis.join(" ")}`);
  return { origin: new URL(apis[0]).origin, operatorLink: link };
}

let browser = null;
let failed = null;
try {
  const { origin, operatorLink } = await startDevnet();
  // lib/node-api.mjs's cliLease reads the devnet's buyers from SURPLUS_DEVNET: this devnet's.
  process.env.SURPLUS_DEVNET = devnetDir;
  const devnetFile = JSON.parse(readFileSync(path.join(devnetDir, "devnet.json"), "utf8"));
  const probeUrl = `${devnetFile.nodes[0].api.replace(/\/$/, "")}/healthz`;

  browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(60_000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const tid = (id) => page.locator(`[data-testid="${id}"]`);
  const found = [];
  /** Runs axe on the page as it is; records serious and critical violations as `state`. */
  async function axe(state) {
    if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) await page.addScriptTag({ path: axePath });
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
    for (const v of bad) {
      found.push(`${state}: ${v.id} (${v.impact}): ${v.help}\n      ${v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")}: ${n.html.slice(0, 160)}`).join("\n      ")}`);
    }
    log(`${state}: axe found ${result.violations.length} violation(s)${result.violations.length
      ? ` (${result.violations.map((v) => `${v.id}: ${v.impact}`).join(", ")})` : ""}, ${bad.length} serious or critical`);
  }

  // The buyer: the sample buyer 0's key in node 0's UI, and a lease of node 0 bid for it.
  await page.goto(`${origin}/#/buyer`, { waitUntil: "load" });
  await tid("key-import-text").fill(readFileSync(devnetFile.buyers[0].key_file, "utf8"));
  await tid("key-import").click();
  await tid("key-public").waitFor();
  const lease = await cliLease(origin, 0);
  log(`lease ${lease.slice(0, 12)}… made`);
  const part = page.locator(`[data-testid="lease-row"][data-lease="${lease}"] [data-testid="lease-supervision"]`);
  // The provider records the probe target after its start hook, in a later block: the part
  // follows without a reload.
  await until("the lease's probe target on the buyer's page", async () =>
    (await part.count()) === 1 && (await part.getAttribute("data-probed")) === "true");
  const text = (await part.textContent()).replace(/\s+/g, " ");
  check(text.startsWith("Supervision:"), `the buyer's lease shows its Supervision part: "${text}"`);
  check(text.includes(`HTTP GET ${probeUrl} answering 200`), `its probe target is the provider's ${probeUrl}`);
  check(/measured availability so far \d{1,3}\.\d\d %/.test(text), "it shows the availability measured so far");
  check(/time found down: \d/.test(text), "it shows the time found down");
  check(/Service credits: \d+(\.\d+)? credits?/.test(text), "it shows the service credits received");
  check(text.includes("99.50 % promised; below it, 10 % of the lease's cost back"), "it says what the market promises");
  await page.locator('[data-testid="my-leases"]').screenshot({ path: path.join(artifacts, "buyer-lease.png") });
  await axe("buyer-lease");

  // The operator of dc1, from the link the devnet printed.
  await page.goto(operatorLink, { waitUntil: "load" });
  const watched = page.locator(`[data-testid="watched-lease"][data-lease="${lease}"]`);
  await until("the lease in the operator's Supervision section", async () => (await watched.count()) === 1);
  check((await watched.textContent()).includes(probeUrl), "the operator's Supervision section lists the lease with its probe target");
  const bond = (await tid("earnings-bond").textContent()).trim();
  check(/^\d+(\.\d+)? cr$/.test(bond) && (await tid("earnings-balance").count()) === 1, `the bond (${bond}) is shown next to the balance`);
  await page.locator('[data-testid="operator-supervision"]').screenshot({ path: path.join(artifacts, "operator-supervision.png") });
  await axe("operator");

  // The navigation's Status link: the server's page.
  const status = tid("nav-status");
  check((await status.getAttribute("href")) === "/status", "the navigation links to /status");
  await Promise.all([page.waitForURL(`${origin}/status`), status.click()]);
  await page.waitForLoadState("load");
  const headings = (await page.locator("h2").allTextContents()).map((t) => t.trim());
  for (const want of ["Blocks and validators", "Providers' availability", "Incidents"]) {
    check(headings.includes(want), `/status has the heading "${want}"`);
  }
  await page.screenshot({ path: path.join(artifacts, "status.png"), fullPage: true });
  await axe("status");
  if (errors.length) throw new Error(`the page reported errors:\n  ${errors.join("\n  ")}`);
  if (found.length) throw new Error(`serious or critical accessibility violations:\n  ${found.join("\n  ")}`);
  log("PASS");
} catch (e) {
  failed = e;
}
await browser?.close().catch(() => {});
if (failed) nodeLogs();
await stopDevnet();
if (failed) {
  console.error(`supervision: FAIL: ${failed.message}`);
  process.exit(1);
}
rmSync(devnetDir, { recursive: true, force: true });
process.exit(0);
