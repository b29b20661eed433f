// Helpers the browser tests share: reading a node's API from the test process (not the
// browser), bounded polling, and picking a market where a node offers capacity.

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
