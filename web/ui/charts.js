// Inline SVG charts built with the DOM (no library): a line chart (price history, leased
// capacity over time) and a depth step chart (cumulative slots by price for bids and offers).

const NS = "http://www.w3.org/2000/svg";
const W = 560;
const H = 220;
const PAD = { left: 64, right: 16, top: 14, bottom: 34 };

function el(doc, name, attrs = {}, text) {
  const e = doc.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(doc, title) {
  const svg = el(doc, "svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", width: "100%",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(el(doc, "title", {}, title));
  return svg;
}

function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

function axes(doc, svg, { xTicks, yTicks, xLabel, yLabel }) {
  const g = el(doc, "g", { class: "axes" });
  g.append(el(doc, "line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }));
  g.append(el(doc, "line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }));
  for (const [x, label] of xTicks) {
    g.append(el(doc, "text", { x, y: H - PAD.bottom + 14, "text-anchor": "middle" }, label));
  }
  for (const [y, label] of yTicks) {
    g.append(el(doc, "line", { x1: PAD.left - 4, y1: y, x2: W - PAD.right, y2: y, class: "grid" }));
    g.append(el(doc, "text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, label));
  }
  if (xLabel) g.append(el(doc, "text", { x: (W + PAD.left) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, xLabel));
  if (yLabel) g.append(el(doc, "text", { x: 4, y: PAD.top - 2, class: "label" }, yLabel));
  svg.append(g);
}

function empty(doc, svg, message) {
  svg.append(el(doc, "text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, message));
  return svg;
}

/**
 * A line chart of `points` ([{x, y}] numbers, x increasing). Options: title, formatX, formatY,
 * xLabel, yLabel, empty (message when there are no points), step (draw as steps).
 */
export function lineChart(points, opts = {}, doc = globalThis.document) {
  const svg = frame(doc, opts.title ?? "chart");
  if (!points.length) return empty(doc, svg, opts.empty ?? "no data yet");
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys) * 1.1 || 1;
  const sx = scale(x0, x1 === x0 ? x0 + 1 : x1, PAD.left, W - PAD.right);
  const sy = scale(y0, y1, H - PAD.bottom, PAD.top);
  const fx = opts.formatX ?? String;
  const fy = opts.formatY ?? String;
  const xTicks = [x0, (x0 + x1) / 2, x1].map((v) => [sx(v), fx(v)]);
  const yTicks = [y0, (y0 + y1) / 2, y1].map((v) => [sy(v), fy(v)]);
  axes(doc, svg, { xTicks, yTicks, xLabel: opts.xLabel, yLabel: opts.yLabel });
  let d = "";
  points.forEach((p, i) => {
    if (i === 0) d += `M${sx(p.x)},${sy(p.y)}`;
    else if (opts.step) d += `H${sx(p.x)}V${sy(p.y)}`;
    else d += `L${sx(p.x)},${sy(p.y)}`;
  });
  svg.append(el(doc, "path", { d, class: "line" }));
  for (const p of points.slice(-50)) {
    const c = el(doc, "circle", { cx: sx(p.x), cy: sy(p.y), r: 2.5, class: "dot" });
    c.append(el(doc, "title", {}, `${fx(p.x)}: ${fy(p.y)}`));
    svg.append(c);
  }
  return svg;
}

/**
 * A depth chart: `bids` and `offers` are levels [{price, slots}] best first (bids highest
 * price first, offers lowest first); each side is drawn as cumulative slots against price.
 */
export function depthChart(bids, offers, opts = {}, doc = globalThis.document) {
  const svg = frame(doc, opts.title ?? "order book depth");
  if (!bids.length && !offers.length) return empty(doc, svg, opts.empty ?? "the book is empty");
  const cumulative = (levels) => {
    let total = 0;
    return levels.map((l) => ({ price: Number(l.price), slots: (total += Number(l.slots)) }));
  };
  const b = cumulative(bids);
  const o = cumulative(offers);
  const prices = [...b, ...o].map((l) => l.price);
  const pMin = Math.min(...prices);
  const pMax = Math.max(...prices);
  const margin = (pMax - pMin) * 0.1 || pMax * 0.1 || 1;
  const x0 = Math.max(0, pMin - margin);
  const x1 = pMax + margin;
  const y1 = Math.max(...[...b, ...o].map((l) => l.slots)) * 1.1;
  const sx = scale(x0, x1, PAD.left, W - PAD.right);
  const sy = scale(0, y1, H - PAD.bottom, PAD.top);
  const fx = opts.formatPrice ?? String;
  axes(doc, svg, {
    xTicks: [x0, (x0 + x1) / 2, x1].map((v) => [sx(v), fx(v)]),
    yTicks: [0, y1 / 2, y1].map((v) => [sy(v), String(Math.round(v))]),
    xLabel: opts.xLabel ?? "price", yLabel: opts.yLabel ?? "slots",
  });
  // Bids: from the best (highest) price leftwards; offers: from the best (lowest) rightwards.
  const side = (levels, edge, cls) => {
    if (!levels.length) return;
    let d = `M${sx(levels[0].price)},${sy(0)}`;
    let prev = 0;
    for (const l of levels) {
      d += `H${sx(l.price)}V${sy(l.slots)}`;
      prev = l.slots;
    }
    d += `H${sx(edge)}`;
    svg.append(el(doc, "path", { d, class: cls }));
    svg.append(el(doc, "text", { x: sx(levels[0].price), y: sy(prev) - 4, class: `${cls}-label` },
      cls === "bids" ? "bids" : "offers"));
  };
  side(b, x0, "bids");
  side(o, x1, "offers");
  return svg;
}
