// Helpers the browser tests share: reading a node's API from the test process (not the
// browser), bounded polling, picking a market where a node offers capacity, and a lease made
// through the CLI.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

/** JSON from `GET /api/v1/{p}` of the node at `origin`, within 10 s. */
export async function nodeApi(origin, p) {
  const r = await fetch(new URL(`/api/v1/${p}`, origin), { signal: AbortSignal.timeout(10_000) });
  if (!r.ok) throw new Error(`GET /api/v1/${p} answered ${r.status}: ${await r.text()}`);
  return r.json();
}

/**
 * Polls `probe` every `every` ms until it returns a truthy value; throws, naming `what`, after
 * `ms`. An error with `fatal` set ends the wait at once.
 */
export async function until(what, probe, ms, every = 500) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
}

/**
 * The cheapest market where the node at `origin` offers at least one free slot:
 * `{ market, reserve, provider }`, or null.
 */
export async function pickMarket(origin) {
  const me = (await nodeApi(origin, "status")).public_key;
  const markets = await nodeApi(origin, "markets");
  let best = null;
  for (const m of markets) {
    const book = await nodeApi(origin, `book?market=${encodeURIComponent(m.market)}&limit=100`);
    for (const o of book.offers.orders) {
      const reserve = BigInt(o.price);
      if (o.author === me && o.free >= 1 && (!best || reserve < best.reserve)) {
        best = { market: m.market, reserve, provider: me };
      }
    }
  }
  return best;
}

/**
 * A new lease of the node at `origin` as provider, for the devnet's sample buyer `buyer` (an
 * index into devnet.json's buyers): `surplus bid` (SURPLUS_BIN) on the node's cheapest free
 * offer, then its lease id (bounded waits).
 */
export async function cliLease(origin, buyer) {
  const devnet = JSON.parse(readFileSync(path.join(process.env.SURPLUS_DEVNET, "devnet.json"), "utf8"));
  const b = devnet.buyers[buyer];
  const mine = async () => (await nodeApi(origin, `leases?account=${b.public_key}&limit=100`)).leases ?? [];
  const before = new Set((await mine()).map((l) => l.id));
  const pick = await until("an offer of the node", () => pickMarket(origin), 60_000);
  execFileSync(process.env.SURPLUS_BIN, ["bid", "--node", origin, "--key", b.key_file, "--market", pick.market,
    "--slots", "1", "--hours", "1", "--limit", String(pick.reserve * 2n)], { stdio: "inherit", timeout: 30_000 });
  return until("the CLI bid's lease", async () => (await mine()).find((l) => !before.has(l.id))?.id, 90_000);
}
