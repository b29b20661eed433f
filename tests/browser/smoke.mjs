// Browser smoke test: every node serves the web UI with its strict Content-Security-Policy, and
// node 0's UI loads in headless Chromium with no console error, no uncaught exception, no failed
// request and no request to any origin but the node's own. A screenshot is saved.
//
// Run by scripts/browser-test, which provides SURPLUS_UI, SURPLUS_NODES, CHROMIUM, ARTIFACTS and
// NODE_PATH (see the script's header).
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

// ES modules ignore NODE_PATH; require() through createRequire honours it.
const { chromium } = createRequire(import.meta.url)("playwright-core");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through scripts/browser-test`);
  return v;
};
const ui = env("SURPLUS_UI");
const nodes = JSON.parse(env("SURPLUS_NODES"));
const artifacts = env("ARTIFACTS");
const origin = new URL(ui).origin;

function checkCsp(csp, where) {
  assert.ok(csp, `${where} sends no Content-Security-Policy header`);
  const directives = Object.fromEntries(
    csp.split(";").map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map((d) => [d[0], d.slice(1)]),
  );
  assert.deepEqual(directives["default-src"], ["'self'"], `${where}: default-src is not 'self': ${csp}`);
  for (const [name, sources] of Object.entries(directives)) {
    for (const s of sources) {
      assert.ok(
        !/^https?:|^\*$|unsafe-inline|unsafe-eval/.test(s),
        `${where}: ${name} allows ${s}, which lets the page load from or run code of elsewhere: ${csp}`,
      );
    }
  }
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  // CI runs as root, where Chromium refuses its sandbox.
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();

  // Every node serves the UI with the same policy.
  for (const api of nodes) {
    const r = await context.request.get(`${api}/`);
    assert.equal(r.status(), 200, `GET ${api}/ answered ${r.status()}`);
    assert.match(r.headers()["content-type"] ?? "", /^text\/html/, `GET ${api}/ is not HTML`);
    checkCsp(r.headers()["content-security-policy"], `GET ${api}/`);
  }

  const problems = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()} (${m.location()?.url})`);
  });
  page.on("pageerror", (e) => problems.push(`uncaught exception: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on("request", (r) => requests.push(r.url()));
  page.on("response", (r) => {
    // Every file the page asks for must load (a favicon too: a 404 is a console error); API
    // refusals are the app's business, server errors are not.
    const u = new URL(r.url());
    if (!u.pathname.startsWith("/api/") && r.status() !== 200) {
      problems.push(`${r.url()} answered ${r.status()}`);
    } else if (r.status() >= 500) {
      problems.push(`${r.url()} answered ${r.status()}`);
    }
  });

  const response = await page.goto(ui, { waitUntil: "load" });
  assert.ok(response, `no response for ${ui}`);
  assert.equal(response.status(), 200, `GET ${ui} answered ${response.status()}`);
  checkCsp(response.headers()["content-security-policy"], `GET ${ui}`);

  // The app ran: it replaced the page's "Loading…" placeholder.
  await page.waitForFunction(
    () => {
      const app = document.getElementById("app");
      return app && app.textContent.trim() !== "" && !app.textContent.includes("Loading…");
    },
    null,
    { timeout: 15_000 },
  );
  // Let the app's first API calls settle (bounded: live streams keep the network busy).
  await page.waitForLoadState("networkidle", { timeout: 5_000 }).catch(() => {});

  const shot = join(artifacts, "ui.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 1000, `the screenshot ${shot} is empty`);

  const foreign = requests.filter((u) => {
    const p = new URL(u);
    return p.protocol !== "data:" && p.protocol !== "blob:" && p.origin !== origin;
  });
  assert.deepEqual(foreign, [], `the UI made requests to other origins than ${origin}`);
  assert.ok(requests.some((u) => new URL(u).pathname === "/ui/app.js"), "the page did not load /ui/app.js");
  assert.deepEqual(problems, [], "the UI had problems while loading");

  console.log(`smoke: ${ui} loaded with its CSP, ${requests.length} requests all to ${origin}, no errors; ${shot}`);
} finally {
  await browser.close();
}
