// reelfork creator view: a story's graph as SVG, laid out here. No framework, no libraries, no build step.
// Data: GET /v1/stories, /v1/stories/{id}/versions, /v1/stories/{id}/graph (JSON; ?format=dot|mermaid) and
// /v1/stories/{id}/cast (each character and look with its portrait); with
// the creator token also /v1/stories/{id}/analytics, for the drop-off heat of each scene.
// Query parameters:
//   ?story=<id>    the story to draw (default: the first published story)
//   ?version=<n>   the version to draw (default: the latest)
// Layout: layers by BFS depth from the start scene, top to bottom; within a layer, barycentre ordering to
// reduce crossings, then x positions pulled towards neighbours (isotonic regression keeps the order and gaps).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 152;
const NODE_H = 58;
const COL_GAP = 26;
const LAYER_GAP = 96;
const MARGIN = 18;
const LOOP_GAP = 34; // how far right of the nodes a back edge swings
const LABEL_MAX_W = 108;
const LABEL_PAD_X = 7;
const LABEL_PAD_Y = 5;
const LABEL_LINE = 13;
const LABEL_GAP = 6; // minimum space between two labels in the same row
const MIN_ZOOM = 0.35;
const MAX_FIT_ZOOM = 1.25;
const SANS = 'ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif';
const SERIF = 'ui-serif, "Iowan Old Style", Palatino, Georgia, "DejaVu Serif", serif';
// The same strings size the text (canvas measureText) and draw it (SVG style.font), so wrapping is exact.
const FONT = {
  kicker: `700 9px ${SANS}`,
  title: `700 13.5px ${SERIF}`,
  hint: `italic 500 11px ${SANS}`, // an open choice's title is the writer's brief: longer, smaller
  label: `500 10.5px ${SANS}`,
  count: `700 10px ${SANS}`,
};
const KINDS = {
  start: { name: "Start", kicker: "\u25B6 Start" },
  scene: { name: "Scene", kicker: null }, // the kicker shows the scene id
  ending: { name: "Ending", kicker: "Ending" },
  open: { name: "Open choice", kicker: "Open \u00B7 AI writes" },
  written: { name: "Written by AI", kicker: "Written by AI" },
  missing: { name: "Missing scene", kicker: "Missing" },
};

const params = new URLSearchParams(location.search);
// The creator token: viewer counts are the creator's. From the field below, or once from "#token=..." (a URL
// fragment never reaches a server); kept for this tab only.
const TOKEN_KEY = "reelfork-creator-token";
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) sessionStorage.setItem(TOKEN_KEY, fromHash);
const creatorToken = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const $ = (id) => document.getElementById(id);
const ui = {
  storySelect: $("story-select"),
  versionSelect: $("version-select"),
  summary: $("summary"),
  playLink: $("play-link"),
  analyticsLink: $("analytics-link"),
  zoomFit: $("zoom-fit"),
  zoomActual: $("zoom-actual"),
  refresh: $("refresh"),
  token: $("token-input"),
  dot: $("dl-dot"),
  mermaid: $("dl-mermaid"),
  legend: $("legend"),
  cast: $("cast"),
  castList: $("cast-list"),
  canvas: $("canvas"),
  graph: $("graph"),
  empty: $("empty"),
  tip: $("tip"),
  status: $("status"),
};

const state = {
  stories: [],
  storyId: null,
  version: null, // null = the latest
  latest: null,
  fit: true,
  layout: null,
  model: null,
  loadSeq: 0,
  tipFor: null,
};

// ---------- small helpers ----------

function endpoint(path) {
  return new URL(path, document.baseURI).href;
}

async function getJSON(path, { auth = false } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && creatorToken()) headers.Authorization = `Bearer ${creatorToken()}`;
  const response = await fetch(endpoint(path), { headers });
  if (!response.ok) {
    let detail = "";
    try { detail = (await response.json()).detail ?? ""; } catch { /* not JSON */ }
    throw new Error(typeof detail === "string" && detail ? detail : `HTTP ${response.status}`);
  }
  return response.json();
}

function setStatus(text, kind = "info") {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function svg(tag, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  if (parent) parent.append(element);
  return element;
}

const round = (n) => Math.round(n * 10) / 10;
const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const measure = document.createElement("canvas").getContext("2d");
function textWidth(text, font) {
  measure.font = font;
  return measure.measureText(text).width;
}

/** Greedy word wrap to at most `maxLines` lines of `maxWidth` px; the last line ends in "…" if cut. */
function wrap(text, font, maxWidth, maxLines) {
  const words = String(text ?? "").trim().split(/\s+/).filter(Boolean);
  const lines = [];
  let line = "";
  let index = 0;
  for (; index < words.length; index += 1) {
    const candidate = line ? `${line} ${words[index]}` : words[index];
    if (textWidth(candidate, font) <= maxWidth || !line) {
      line = candidate;
      continue;
    }
    lines.push(line);
    line = words[index];
    if (lines.length === maxLines) break;
  }
  if (lines.length < maxLines && line) {
    lines.push(line);
    line = "";
    index = words.length;
  }
  const cut = index < words.length;
  const last = lines.length - 1;
  if (last >= 0 && (cut || textWidth(lines[last], font) > maxWidth)) {
    let shortened = lines[last];
    while (shortened.length > 1 && textWidth(`${shortened}\u2026`, font) > maxWidth) shortened = shortened.slice(0, -1);
    lines[last] = `${shortened.trimEnd()}\u2026`;
  }
  return lines;
}

/**
 * Positions as close as possible (least squares) to `desired`, in the given order, with at least
 * `gaps[i]` between item i and i+1: isotonic regression by pool-adjacent-violators.
 */
function pack(desired, gaps) {
  const offsets = [0];
  for (let i = 1; i < desired.length; i += 1) offsets.push(offsets[i - 1] + gaps[i - 1]);
  const blocks = [];
  desired.forEach((d, i) => {
    let block = { sum: d - offsets[i], n: 1 };
    while (blocks.length && blocks.at(-1).sum / blocks.at(-1).n > block.sum / block.n) {
      const previous = blocks.pop();
      block = { sum: previous.sum + block.sum, n: previous.n + block.n };
    }
    blocks.push(block);
  });
  const out = [];
  for (const block of blocks) {
    for (let k = 0; k < block.n; k += 1) out.push(block.sum / block.n + offsets[out.length]);
  }
  return out;
}

// ---------- model ----------

/** Drop-off per scene from the analytics report: viewers who left there, out of those who entered it. */
function dropOffs(report) {
  const scenes = new Map();
  for (const scene of report?.scenes ?? []) {
    scenes.set(scene.scene, { entries: scene.entries, left: scene.left, share: scene.entries ? scene.left / scene.entries : 0 });
  }
  return scenes;
}

/** Heat for a drop-off share: the node's own fill (none left) to red (all left). */
function heat(share) {
  const from = [23, 26, 38];
  const to = [196, 42, 52];
  const t = Math.min(1, Math.max(0, share)) ** 0.7; // a few leavers already show
  const mix = from.map((c, i) => Math.round(c + (to[i] - c) * t));
  return `rgb(${mix.join(",")})`;
}

function buildModel(data, report = null) {
  const nodes = new Map();
  const addNode = (node) => {
    if (!nodes.has(node.id)) nodes.set(node.id, { ...node, kind: KINDS[node.kind] ? node.kind : "scene", out: [], in: [] });
  };
  for (const node of data.nodes ?? []) addNode(node);
  const edges = [];
  (data.edges ?? []).forEach((raw, index) => {
    for (const end of [raw.source, raw.target]) addNode({ id: end, title: end, kind: "missing" });
    const edge = { ...raw, index, viewers: Math.max(0, Math.floor(Number(raw.viewers) || 0)) };
    edges.push(edge);
    nodes.get(edge.source).out.push(edge);
    nodes.get(edge.target).in.push(edge);
  });
  const drops = dropOffs(report);
  for (const [id, drop] of drops) if (nodes.has(id)) nodes.get(id).drop = drop;
  return { id: data.id, version: data.version, start: data.start, nodes, edges, heat: report !== null };
}

// ---------- layout ----------

function layoutGraph(model) {
  // 1. Layers: BFS depth from the start; anything unreachable starts a BFS of its own at the top.
  const layerOf = new Map();
  const queue = [];
  const bfs = (seed) => {
    layerOf.set(seed, 0);
    queue.push(seed);
    while (queue.length) {
      const id = queue.shift();
      for (const edge of model.nodes.get(id).out) {
        if (!layerOf.has(edge.target)) {
          layerOf.set(edge.target, layerOf.get(id) + 1);
          queue.push(edge.target);
        }
      }
    }
  };
  if (model.nodes.has(model.start)) bfs(model.start);
  for (const id of model.nodes.keys()) if (!layerOf.has(id)) bfs(id);
  const layers = [];
  for (const [id, layer] of layerOf) (layers[layer] ??= []).push(id); // BFS order: the author's choice order

  // With BFS depths an edge goes one layer down, stays in its layer, or goes back up (only an edge out of a
  // scene unreachable from the start can skip layers down). All but the first kind loop round on the right.
  const isForward = (edge) => layerOf.get(edge.target) === layerOf.get(edge.source) + 1;
  const preds = new Map();
  const succs = new Map();
  for (const edge of model.edges.filter(isForward)) {
    if (!preds.has(edge.target)) preds.set(edge.target, []);
    if (!succs.has(edge.source)) succs.set(edge.source, []);
    preds.get(edge.target).push(edge.source);
    succs.get(edge.source).push(edge.target);
  }

  // 2. Order within layers: barycentre sweeps down and up; keep the order with the fewest crossings.
  const order = orderLayers(layers, preds, succs);

  // 3. x: start packed and centred, then pull each node towards its neighbours' mean, keeping order and gaps.
  const step = NODE_W + COL_GAP;
  const cx = new Map();
  for (const layer of order) layer.forEach((id, i) => cx.set(id, (i - (layer.length - 1) / 2) * step));
  const place = (layer, neighbours) => {
    const desired = layer.map((id) => {
      const ns = neighbours(id);
      return ns.length ? mean(ns.map((n) => cx.get(n))) : cx.get(id);
    });
    pack(desired, layer.slice(1).map(() => step)).forEach((x, i) => cx.set(layer[i], x));
  };
  // Ending on an upward sweep puts a parent over the middle of its children and keeps chains straight.
  for (let pass = 0; pass < 4; pass += 1) {
    for (let l = 1; l < order.length; l += 1) place(order[l], (id) => preds.get(id) ?? []);
    for (let l = order.length - 2; l >= 0; l -= 1) place(order[l], (id) => succs.get(id) ?? []);
  }

  const boxes = new Map();
  order.forEach((layer, l) => {
    for (const id of layer) {
      const x = cx.get(id) - NODE_W / 2;
      const y = l * (NODE_H + LAYER_GAP);
      boxes.set(id, { id, layer: l, x, y, cx: cx.get(id), cy: y + NODE_H / 2 });
    }
  });

  // 4. Edges: forward edges leave the bottom and enter the top through spread ports; the rest loop on the right.
  const maxViewers = Math.max(0, ...model.edges.map((e) => e.viewers));
  const routes = [];
  const portOffsets = (edges, key) => {
    const sorted = [...edges].sort((a, b) => key(a) - key(b) || a.index - b.index);
    const spacing = sorted.length > 1 ? Math.min(16, (NODE_W - 56) / (sorted.length - 1)) : 0;
    return new Map(sorted.map((edge, i) => [edge, (i - (sorted.length - 1) / 2) * spacing]));
  };
  const outPorts = new Map();
  const inPorts = new Map();
  for (const node of model.nodes.values()) {
    for (const [edge, offset] of portOffsets(node.out.filter(isForward), (e) => boxes.get(e.target).cx)) outPorts.set(edge, offset);
    for (const [edge, offset] of portOffsets(node.in.filter(isForward), (e) => boxes.get(e.source).cx)) inPorts.set(edge, offset);
  }
  let loops = 0; // back edges so far: each swings a little further out
  for (const edge of model.edges) {
    const from = boxes.get(edge.source);
    const to = boxes.get(edge.target);
    let d;
    let at;
    if (isForward(edge)) {
      const sx = from.cx + outPorts.get(edge);
      const sy = from.y + NODE_H;
      const tx = to.cx + inPorts.get(edge);
      const ty = to.y - 1;
      const bend = LAYER_GAP * 0.5;
      d = `M${round(sx)},${sy} C${round(sx)},${sy + bend} ${round(tx)},${ty - bend} ${round(tx)},${ty}`;
      at = { x: (sx + tx) / 2, y: (sy + ty) / 2, row: from.layer };
    } else {
      // Back edges, edges within a layer and self-loops run through the gaps between layers (never
      // through a node): down out of the source, right past the drawing, up, and into the target's top.
      const low = Math.min(from.layer, to.layer);
      const high = Math.max(from.layer, to.layer);
      const right = Math.max(...[...boxes.values()].filter((b) => b.layer >= low && b.layer <= high).map((b) => b.x + NODE_W));
      const swing = edge.source === edge.target ? from.x + NODE_W + COL_GAP / 2 : right + LOOP_GAP + 16 * (loops++ % 4);
      const sx = from.x + NODE_W - 16;
      const tx = to.x + NODE_W - 16;
      const below = from.y + NODE_H + 14;
      const above = to.y - 14;
      d = roundedPath([[sx, from.y + NODE_H], [sx, below], [swing, below], [swing, above], [tx, above], [tx, to.y - 1]], 9);
      at = { x: swing, y: (below + above) / 2, row: null };
    }
    routes.push({ edge, d, at, forward: isForward(edge), width: edgeWidth(edge.viewers, maxViewers) });
  }

  // 5. Labels: wrap, size, and keep the labels of one row (the gap between two layers) from overlapping.
  for (const route of routes) route.label = edgeLabel(route.edge, model);
  const rows = new Map();
  for (const route of routes) {
    if (route.at.row === null) continue;
    if (!rows.has(route.at.row)) rows.set(route.at.row, []);
    rows.get(route.at.row).push(route);
  }
  for (const row of rows.values()) {
    row.sort((a, b) => a.at.x - b.at.x || a.edge.index - b.edge.index);
    const xs = pack(row.map((r) => r.at.x), row.slice(1).map((r, i) => (row[i].label.w + r.label.w) / 2 + LABEL_GAP));
    xs.forEach((x, i) => { row[i].at.x = x; });
  }

  // 6. Bounds: shift everything so the drawing starts at the margin.
  let minX = Infinity;
  let maxX = -Infinity;
  let maxY = 0;
  for (const box of boxes.values()) {
    minX = Math.min(minX, box.x);
    maxX = Math.max(maxX, box.x + NODE_W);
    maxY = Math.max(maxY, box.y + NODE_H);
  }
  for (const route of routes) {
    minX = Math.min(minX, route.at.x - route.label.w / 2);
    maxX = Math.max(maxX, route.at.x + route.label.w / 2);
  }
  return {
    boxes,
    routes,
    order,
    dx: MARGIN - minX,
    dy: MARGIN,
    width: Math.ceil(maxX - minX + 2 * MARGIN),
    height: Math.ceil(maxY + 2 * MARGIN),
  };
}

/** An SVG path through `points` (axis-parallel segments) with corners rounded to `radius`. */
function roundedPath(points, radius) {
  let d = `M${round(points[0][0])},${round(points[0][1])}`;
  for (let i = 1; i < points.length - 1; i += 1) {
    const [px, py] = points[i - 1];
    const [x, y] = points[i];
    const [nx, ny] = points[i + 1];
    const r = Math.min(radius, Math.hypot(x - px, y - py) / 2, Math.hypot(nx - x, ny - y) / 2);
    const inX = x - Math.sign(x - px) * r;
    const inY = y - Math.sign(y - py) * r;
    const outX = x + Math.sign(nx - x) * r;
    const outY = y + Math.sign(ny - y) * r;
    d += ` L${round(inX)},${round(inY)} Q${round(x)},${round(y)} ${round(outX)},${round(outY)}`;
  }
  const [lx, ly] = points.at(-1);
  return `${d} L${round(lx)},${round(ly)}`;
}

function orderLayers(layers, preds, succs) {
  const order = layers.map((layer) => [...layer]);
  const pos = new Map();
  const index = () => order.forEach((layer) => layer.forEach((id, i) => pos.set(id, i)));
  const crossings = () => {
    let count = 0;
    for (let l = 0; l + 1 < order.length; l += 1) {
      const pairs = [];
      for (const source of order[l]) for (const target of succs.get(source) ?? []) pairs.push([pos.get(source), pos.get(target)]);
      for (let i = 0; i < pairs.length; i += 1) {
        for (let j = i + 1; j < pairs.length; j += 1) {
          if ((pairs[i][0] - pairs[j][0]) * (pairs[i][1] - pairs[j][1]) < 0) count += 1;
        }
      }
    }
    return count;
  };
  index();
  // Counting crossings is quadratic in the edges between two layers: on very large graphs, sweep blind.
  const widest = Math.max(0, ...order.map((layer) => layer.reduce((n, id) => n + (succs.get(id)?.length ?? 0), 0)));
  const blind = widest > 1500;
  let best = order.map((layer) => [...layer]);
  let fewest = blind ? Infinity : crossings();
  for (let sweep = 0; sweep < (blind ? 4 : 8) && fewest > 0; sweep += 1) {
    const down = sweep % 2 === 0;
    const neighbours = down ? preds : succs;
    const range = down ? [...order.keys()].slice(1) : [...order.keys()].reverse().slice(1);
    for (const l of range) {
      const bary = new Map(order[l].map((id) => {
        const ns = neighbours.get(id) ?? [];
        return [id, ns.length ? mean(ns.map((n) => pos.get(n))) : pos.get(id)];
      }));
      order[l].sort((a, b) => bary.get(a) - bary.get(b)); // stable: ties keep the author's order
      order[l].forEach((id, i) => pos.set(id, i));
    }
    const count = blind ? -sweep : crossings();
    if (count < fewest) {
      fewest = count;
      best = order.map((layer) => [...layer]);
    }
  }
  return best;
}

function edgeWidth(viewers, maxViewers) {
  return maxViewers > 0 ? 1.4 + 5.6 * (viewers / maxViewers) : 1.4;
}

/** The edge's share of the viewers who took any choice of its scene, in whole percent (null: nobody yet). */
function choiceShare(edge, model) {
  const total = model.nodes.get(edge.source).out.reduce((sum, e) => sum + e.viewers, 0);
  return total > 0 ? Math.round((100 * edge.viewers) / total) : null;
}

function viewerText(edge, model) {
  const siblings = model.nodes.get(edge.source).out;
  const share = choiceShare(edge, model);
  let text = plural(edge.viewers, "viewer");
  if (siblings.length > 1 && share !== null) text += ` \u00B7 ${share}%`;
  return text;
}

function edgeLabel(edge, model) {
  const lines = wrap(edge.label || edge.choice, FONT.label, LABEL_MAX_W, 2);
  const count = viewerText(edge, model);
  const w = Math.ceil(Math.max(textWidth(count, FONT.count), ...lines.map((line) => textWidth(line, FONT.label)))) + 2 * LABEL_PAD_X;
  const h = (lines.length + 1) * LABEL_LINE + 2 * LABEL_PAD_Y;
  return { lines, count, w, h };
}

// ---------- drawing ----------

function draw(model, layout) {
  const root = ui.graph;
  root.replaceChildren();
  root.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
  root.dataset.story = model.id;
  root.dataset.version = String(model.version);
  const defs = svg("defs", {}, root);
  for (const name of ["idle", "hot", "open", "written"]) {
    const marker = svg("marker", {
      id: `arrow-${name}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9,
      markerUnits: "userSpaceOnUse", orient: "auto",
    }, defs);
    svg("path", { d: "M0,0.5 L10,5 L0,9.5 z", class: `arrowhead arrowhead-${name}` }, marker);
  }
  const scene = svg("g", { transform: `translate(${round(layout.dx)},${layout.dy})` }, root);
  const edgeLayer = svg("g", { class: "edges" }, scene);
  const labelLayer = svg("g", { class: "edge-labels" }, scene);
  const nodeLayer = svg("g", { class: "nodes" }, scene);

  for (const route of layout.routes) {
    const { edge } = route;
    const targetKind = model.nodes.get(edge.target).kind;
    const tone = targetKind === "open" ? "open" : targetKind === "written" ? "written" : edge.viewers > 0 ? "hot" : "idle";
    const classes = ["edge", `edge-${tone}`];
    if (edge.viewers > 0) classes.push("has-viewers");
    if (!route.forward) classes.push("edge-back");
    const data = {
      "data-source": edge.source, "data-target": edge.target, "data-choice": edge.choice,
      "data-viewers": edge.viewers, "data-share": choiceShare(edge, model),
      "data-testid": `edge-${edge.source}-${edge.choice}`,
    };
    const group = svg("g", { class: classes.join(" "), ...data }, edgeLayer);
    const title = svg("title", {}, group);
    title.textContent = `${edge.source} \u2192 ${edge.target}: \u201C${edge.label || edge.choice}\u201D, ${viewerText(edge, model)}`;
    svg("path", { d: route.d, class: "edge-hit" }, group);
    svg("path", {
      d: route.d, class: "edge-line", "stroke-width": round(route.width), "marker-end": `url(#arrow-${tone})`,
    }, group);

    const { label, at } = route;
    const tag = svg("g", {
      class: `edge-label edge-label-${tone}${edge.viewers > 0 ? " has-viewers" : ""}`,
      transform: `translate(${round(at.x - label.w / 2)},${round(at.y - label.h / 2)})`,
      ...data, "data-testid": `label-${edge.source}-${edge.choice}`,
    }, labelLayer);
    svg("rect", { width: label.w, height: label.h, rx: 6 }, tag);
    label.lines.forEach((line, i) => {
      const text = svg("text", { x: label.w / 2, y: LABEL_PAD_Y + LABEL_LINE * (i + 1) - 3, class: "label-text" }, tag);
      text.style.font = FONT.label;
      text.textContent = line;
    });
    const count = svg("text", {
      x: label.w / 2, y: LABEL_PAD_Y + LABEL_LINE * (label.lines.length + 1) - 3, class: "label-count",
    }, tag);
    count.style.font = FONT.count;
    count.textContent = label.count;
  }

  for (const layer of layout.order) {
    for (const id of layer) {
      const node = model.nodes.get(id);
      const box = layout.boxes.get(id);
      nodeLayer.append(drawNode(node, box));
    }
  }
  root.dataset.state = "ready";
}

function drawNode(node, box) {
  const reached = node.kind === "start"
    ? node.out.reduce((sum, e) => sum + e.viewers, 0)
    : node.in.reduce((sum, e) => sum + e.viewers, 0);
  const group = svg("g", {
    class: `node node-${node.kind}`,
    transform: `translate(${round(box.x)},${round(box.y)})`,
    tabindex: 0,
    role: "button",
    "aria-label": `${KINDS[node.kind].name}: ${node.title || node.id} (${node.id}), ${plural(reached, "viewer")}`,
    "aria-describedby": "tip",
    "data-id": node.id,
    "data-kind": node.kind,
    "data-testid": `node-${node.id}`,
    "data-entries": node.drop?.entries,
    "data-left": node.drop?.left,
    "data-dropoff": node.drop ? Math.round(node.drop.share * 100) : null,
  });
  if (node.kind === "open") {
    const c = 12;
    svg("path", {
      class: "node-shape",
      d: `M${c},0 H${NODE_W - c} L${NODE_W},${c} V${NODE_H - c} L${NODE_W - c},${NODE_H} H${c} L0,${NODE_H - c} V${c} Z`,
    }, group);
  } else {
    const shape = svg("rect", { class: "node-shape", width: NODE_W, height: NODE_H, rx: 10 }, group);
    if (node.drop?.left) {
      shape.style.fill = heat(node.drop.share);
      group.classList.add("has-dropoff");
    }
    if (node.kind === "ending") svg("rect", { class: "node-inner", x: 4, y: 4, width: NODE_W - 8, height: NODE_H - 8, rx: 7 }, group);
  }
  const kicker = svg("text", { class: "node-kicker", x: NODE_W / 2, y: 17 }, group);
  kicker.style.font = FONT.kicker;
  const kickerText = KINDS[node.kind].kicker ?? node.id;
  kicker.textContent = wrap(kickerText, FONT.kicker, NODE_W - 20, 1)[0] ?? "";
  const font = node.kind === "open" ? FONT.hint : FONT.title;
  const lines = wrap(node.title || node.id, font, NODE_W - 20, 2);
  const leading = node.kind === "open" ? 13.5 : 15.5;
  lines.forEach((line, i) => {
    const y = lines.length === 1 ? 40 : 34 + i * leading;
    const text = svg("text", { class: "node-title", x: NODE_W / 2, y }, group);
    text.style.font = font;
    text.textContent = line;
  });
  group.addEventListener("pointerenter", () => showTip(node.id, group));
  group.addEventListener("pointerleave", () => { if (document.activeElement !== group) hideTip(); });
  group.addEventListener("focus", () => showTip(node.id, group));
  group.addEventListener("blur", hideTip);
  group.addEventListener("click", () => group.focus({ preventScroll: true }));
  return group;
}

// ---------- details on hover / focus ----------

function showTip(id, element) {
  const node = state.model?.nodes.get(id);
  if (!node) return;
  state.tipFor = id;
  const tip = ui.tip;
  tip.replaceChildren();
  const add = (tag, className, text) => {
    const el = document.createElement(tag);
    el.className = className;
    el.textContent = text;
    tip.append(el);
    return el;
  };
  add("p", `tip-kind tip-kind-${node.kind}`, KINDS[node.kind].name);
  if (node.kind === "open") {
    // An open node's title is the brief the writer gets; the choice that leads there names it better.
    add("p", "tip-title", node.in[0]?.label || node.id);
    add("p", "tip-brief", node.title || "");
  } else {
    add("p", "tip-title", node.title || node.id);
  }
  add("p", "tip-id", node.id);
  const reached = node.in.reduce((sum, e) => sum + e.viewers, 0);
  if (node.kind !== "start") add("p", "tip-stat", `Reached ${plural(reached, "time")}`);
  if (node.drop) {
    const share = Math.round(node.drop.share * 100);
    add("p", "tip-stat tip-drop", `${plural(node.drop.left, "viewer")} left here (${share}% of ${node.drop.entries} entries)`);
  }
  if (node.out.length) {
    const list = document.createElement("ul");
    list.className = "tip-choices";
    for (const edge of node.out) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = `${edge.label || edge.choice} \u2192 ${edge.target}`;
      const count = document.createElement("b");
      count.textContent = viewerText(edge, state.model);
      if (!edge.viewers) count.className = "none";
      item.append(label, count);
      list.append(item);
    }
    tip.append(list);
  } else if (node.kind === "open") {
    add("p", "tip-stat", "No scene written yet: the AI writes it when a viewer takes this choice.");
  }
  tip.hidden = false;
  // Beside the node if there is room (the choices below stay visible), else below it, else above it.
  const rect = element.getBoundingClientRect();
  const { innerWidth: vw, innerHeight: vh } = window;
  const width = tip.offsetWidth;
  const height = tip.offsetHeight;
  let left;
  let top;
  if (rect.right + 10 + width <= vw - 8) {
    left = rect.right + 10;
    top = rect.top;
  } else if (rect.left - 10 - width >= 8) {
    left = rect.left - 10 - width;
    top = rect.top;
  } else {
    left = rect.left + rect.width / 2 - width / 2;
    top = rect.bottom + 8;
    if (top + height > vh - 8 && rect.top - height - 8 >= 8) top = rect.top - height - 8;
  }
  tip.style.left = `${Math.round(Math.max(8, Math.min(left, vw - width - 8)))}px`;
  tip.style.top = `${Math.round(Math.max(8, Math.min(top, vh - height - 8)))}px`;
  trace(id);
}

function hideTip() {
  state.tipFor = null;
  ui.tip.hidden = true;
  trace(null);
}

/** Highlight a node's choices in and out; dim the rest. */
function trace(id) {
  const root = ui.graph;
  root.classList.toggle("is-tracing", id !== null);
  for (const el of root.querySelectorAll(".is-hot")) el.classList.remove("is-hot");
  if (id === null) return;
  for (const el of root.querySelectorAll(".edge, .edge-label")) {
    if (el.dataset.source === id || el.dataset.target === id) {
      el.classList.add("is-hot");
      for (const end of [el.dataset.source, el.dataset.target]) {
        root.querySelector(`.node[data-id="${CSS.escape(end)}"]`)?.classList.add("is-hot");
      }
    }
  }
  root.querySelector(`.node[data-id="${CSS.escape(id)}"]`)?.classList.add("is-hot");
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.tipFor !== null) {
    document.activeElement?.blur?.();
    hideTip();
  }
});
ui.canvas.addEventListener("scroll", () => { if (state.tipFor !== null && document.activeElement?.dataset?.id !== state.tipFor) hideTip(); }, { passive: true });

// ---------- zoom ----------

function applyZoom({ keepMiddle = true } = {}) {
  const layout = state.layout;
  if (!layout) return;
  const style = getComputedStyle(ui.canvas);
  const available = ui.canvas.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const zoom = state.fit ? Math.max(MIN_ZOOM, Math.min(MAX_FIT_ZOOM, available / layout.width)) : 1;
  // Keep what is in the middle of the screen in the middle when the zoom changes.
  const canvas = ui.canvas;
  const middleX = (canvas.scrollLeft + canvas.clientWidth / 2) / Math.max(1, canvas.scrollWidth);
  const middleY = (canvas.scrollTop + canvas.clientHeight / 2) / Math.max(1, canvas.scrollHeight);
  ui.graph.setAttribute("width", String(Math.round(layout.width * zoom)));
  ui.graph.setAttribute("height", String(Math.round(layout.height * zoom)));
  if (keepMiddle) {
    canvas.scrollLeft = middleX * canvas.scrollWidth - canvas.clientWidth / 2;
    canvas.scrollTop = middleY * canvas.scrollHeight - canvas.clientHeight / 2;
  } else {
    // A new graph: the start at the top, the middle of the drawing in view.
    canvas.scrollLeft = (canvas.scrollWidth - canvas.clientWidth) / 2;
    canvas.scrollTop = 0;
  }
  ui.graph.dataset.zoom = zoom.toFixed(2);
  ui.zoomFit.setAttribute("aria-pressed", String(state.fit));
  ui.zoomActual.setAttribute("aria-pressed", String(!state.fit));
  if (state.tipFor !== null) hideTip();
}

ui.zoomFit.addEventListener("click", () => { state.fit = true; applyZoom(); });
ui.zoomActual.addEventListener("click", () => { state.fit = false; applyZoom(); });
new ResizeObserver(() => { if (state.fit) applyZoom(); }).observe(ui.canvas);

// ---------- loading ----------

function storyURL(id, version) {
  const url = new URL(location.href);
  url.searchParams.set("story", id);
  if (version === null) url.searchParams.delete("version");
  else url.searchParams.set("version", String(version));
  return url;
}

function analyticsPath(id, version) {
  return `v1/stories/${encodeURIComponent(id)}/analytics${version === null ? "" : `?version=${version}`}`;
}

function graphPath(id, version, format) {
  const query = new URLSearchParams();
  if (format) query.set("format", format);
  if (version !== null) query.set("version", String(version));
  const tail = query.toString();
  return `v1/stories/${encodeURIComponent(id)}/graph${tail ? `?${tail}` : ""}`;
}

async function loadStories() {
  setStatus("Loading stories\u2026", "loading");
  try {
    const { stories = [] } = await getJSON("v1/stories");
    state.stories = stories;
  } catch (error) {
    showEmpty(`Could not load stories (${error.message}).`);
    setStatus(`Could not load stories (${error.message}).`, "error");
    return;
  }
  ui.storySelect.replaceChildren(...state.stories.map((story) => new Option(story.title || story.id, story.id)));
  ui.storySelect.disabled = state.stories.length === 0;
  if (!state.stories.length) {
    showEmpty("No stories are published yet.");
    setStatus("No stories yet", "ready");
    return;
  }
  const wanted = params.get("story");
  const version = Number.parseInt(params.get("version") ?? "", 10);
  const known = state.stories.some((story) => story.id === wanted);
  await loadStory(known ? wanted : state.stories[0].id, known && version > 0 ? version : null);
  if (wanted && !known) setStatus(`No story \u201C${wanted}\u201D; showing \u201C${state.storyId}\u201D.`, "error");
}

async function loadStory(id, version, { keepView = false } = {}) {
  const seq = ++state.loadSeq;
  state.storyId = id;
  state.version = version;
  ui.storySelect.value = id;
  ui.graph.dataset.state = "loading";
  setStatus("Loading the graph\u2026", "loading");
  loadCast(id, version, seq);
  history.replaceState(null, "", storyURL(id, version));
  let data;
  let versions;
  let report;
  try {
    [data, versions, report] = await Promise.all([
      getJSON(graphPath(id, version, null), { auth: true }),
      getJSON(`v1/stories/${encodeURIComponent(id)}/versions`).then((v) => v.versions ?? []).catch(() => []),
      // The drop-off heat is the creator's: only with the token; without analytics the graph still draws.
      creatorToken()
        ? getJSON(analyticsPath(id, version), { auth: true }).catch(() => null)
        : Promise.resolve(null),
    ]);
  } catch (error) {
    if (seq !== state.loadSeq) return;
    ui.graph.dataset.state = "error";
    showEmpty(`Could not load the graph of \u201C${id}\u201D (${error.message}).`);
    setStatus(`Could not load the graph (${error.message}).`, "error");
    return;
  }
  if (seq !== state.loadSeq) return; // the creator picked something else meanwhile
  const latest = versions.length ? Math.max(...versions) : data.version;
  state.latest = latest;
  ui.versionSelect.replaceChildren(
    ...[...new Set([...versions, data.version])].sort((a, b) => b - a).map((v) => new Option(v === latest ? `v${v} (latest)` : `v${v}`, String(v))),
  );
  ui.versionSelect.value = String(data.version);
  ui.versionSelect.disabled = versions.length < 2;

  const model = buildModel(data, report !== null && report.version === data.version ? report : null);
  const layout = layoutGraph(model);
  state.model = model;
  state.layout = layout;
  hideTip();
  ui.empty.hidden = true;
  ui.graph.hidden = false;
  draw(model, layout);
  applyZoom({ keepMiddle: keepView });
  summarise(model);
  updateLinks(id, version === null ? null : data.version);
  setStatus("", "ready");
}

// ---------- the cast ----------

async function loadCast(id, version, seq) {
  ui.cast.dataset.state = "loading";
  const query = version === null ? "" : `?version=${version}`;
  let cast;
  try {
    cast = await getJSON(`v1/stories/${encodeURIComponent(id)}/cast${query}`);
  } catch (error) {
    if (seq !== state.loadSeq) return;
    ui.castList.replaceChildren();
    ui.cast.dataset.state = "error";
    return;
  }
  if (seq !== state.loadSeq) return;
  ui.castList.replaceChildren(...cast.members.map(castMember));
  ui.cast.dataset.state = "ready";
}

function castMember(member) {
  const item = document.createElement("li");
  item.className = "cast-member";
  item.dataset.testid = `cast-${member.character}${member.look ? `-${member.look}` : ""}`;
  const portrait = document.createElement("img");
  portrait.src = member.portrait;
  portrait.alt = `Portrait of ${member.name}${member.label ? ` (${member.label})` : ""}`;
  portrait.width = 64;
  portrait.height = 80;
  portrait.loading = "lazy";
  const text = document.createElement("div");
  const name = document.createElement("strong");
  name.textContent = member.name;
  const look = document.createElement("span");
  look.textContent = member.label ? `Look: ${member.label}` : "";
  const likeness = document.createElement("span");
  likeness.className = "cast-likeness";
  likeness.dataset.likeness = member.likeness.kind;
  likeness.textContent = member.likeness.kind === "licensed"
    ? `Licensed likeness \u00B7 release ${member.likeness.release}`
    : "Invented likeness";
  text.append(name, look, likeness);
  item.append(portrait, text);
  return item;
}

function summarise(model) {
  const story = state.stories.find((s) => s.id === model.id);
  const kinds = { start: 0, scene: 0, ending: 0, open: 0, written: 0, missing: 0 };
  for (const node of model.nodes.values()) kinds[node.kind] += 1;
  const taken = model.edges.filter((e) => model.nodes.get(e.source).kind !== "open").reduce((sum, e) => sum + e.viewers, 0);
  const parts = [
    plural(kinds.start + kinds.scene + kinds.ending, "scene"),
    plural(kinds.ending, "ending"),
    plural(kinds.open, "open choice"),
  ];
  if (kinds.written) parts.push(`${kinds.written} written by AI`);
  if (kinds.missing) parts.push(`${kinds.missing} missing`);
  parts.push(plural(taken, "choice") + " taken");
  ui.summary.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = `${story?.title ?? model.id} \u00B7 v${model.version}`;
  ui.summary.append(title, document.createElement("br"), parts.join(" \u00B7 "));
  ui.graph.setAttribute("aria-label", `Story graph of ${story?.title ?? model.id}, version ${model.version}: ${parts.join(", ")}`);
  document.title = `${story?.title ?? model.id} \u00B7 reelfork creator`;
}

function updateLinks(id, version) {
  const suffix = version === null ? "" : `-v${version}`;
  ui.dot.href = endpoint(graphPath(id, version, "dot"));
  ui.dot.download = `${id}${suffix}.dot`;
  ui.mermaid.href = endpoint(graphPath(id, version, "mermaid"));
  ui.mermaid.download = `${id}${suffix}.mmd`;
  const play = new URL("./", document.baseURI);
  play.searchParams.set("story", id);
  ui.playLink.href = play.href;
  const analytics = new URL("analytics.html", document.baseURI);
  analytics.searchParams.set("story", id);
  if (version !== null) analytics.searchParams.set("version", String(version));
  ui.analyticsLink.href = analytics.href;
}

function showEmpty(text) {
  state.layout = null;
  state.model = null;
  ui.graph.replaceChildren();
  ui.graph.hidden = true;
  ui.empty.textContent = text;
  ui.empty.hidden = false;
  ui.summary.textContent = "";
}

ui.storySelect.addEventListener("change", () => loadStory(ui.storySelect.value, null));
ui.versionSelect.addEventListener("change", () => {
  const version = Number.parseInt(ui.versionSelect.value, 10);
  loadStory(state.storyId, version === state.latest ? null : version);
});
ui.refresh.addEventListener("click", () => {
  if (state.storyId) loadStory(state.storyId, state.version, { keepView: true });
});

ui.token.value = creatorToken();
ui.token.addEventListener("change", () => {
  sessionStorage.setItem(TOKEN_KEY, ui.token.value.trim());
  if (state.storyId) loadStory(state.storyId, state.version, { keepView: true });
});

// ---------- boot ----------

if (matchMedia("(max-width: 719px)").matches) { // phones: the graph gets the room
  ui.legend.open = false;
  ui.cast.open = false;
}
loadStories();
