// lamina ui: draws the store from the JSON endpoints (lamina/ui/views.py).
// Every name that comes from an image (tags, paths, instructions) reaches the page as
// text (textContent, attribute values): never as markup.
"use strict";

const started = performance.now();
const state = { store: null, picked: [], selected: null };
const MIN_PX = 22, MAX_PX = 160;

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  if (tag === "div" && attrs && attrs.onclick) {  // a clickable box: reachable and usable from the keyboard
    node.tabIndex = 0;
    node.setAttribute("role", "button");
    node.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); node.click(); }
    });
  }
  return node;
}

function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  let body = null;
  try { body = await resp.json(); } catch (e) { /* a 403 is plain text */ }
  if (!resp.ok) throw new Error((body && body.message) || `${resp.status} ${resp.statusText}`);
  return body;
}

function short(id) { return (id || "").replace(/^sha256:/, "").slice(0, 12); }
function px(size) {
  const largest = Math.max(1, state.store.largest);
  return Math.max(MIN_PX, Math.round((size / largest) * MAX_PX)) + "px";
}
function imageLabel(img) { return img.names.length ? img.names.join(", ") : `<none> ${img.short}`; }
function errorLine(where, err) { clear(where, el("p", { class: "error" }, err.message)); }

// ------------------------------------------------------------------ the store's picture

async function loadStore() {
  const t0 = performance.now();
  let data;
  try {
    data = await api("/api/store");
  } catch (err) {
    const p = document.getElementById("store-error");
    p.hidden = false;
    p.textContent = err.message;
    return;
  }
  const fetched = performance.now();
  state.store = data;
  state.byId = new Map(data.images.map((i) => [i.id, i]));
  state.containers = new Map(data.containers.map((c) => [c.id, c]));
  state.atNode = new Map();
  for (const img of data.images) {
    if (!state.atNode.has(img.top)) state.atNode.set(img.top, []);
    state.atNode.get(img.top).push(img);
  }
  drawStore();
  fillDiffSelects();
  const drawn = performance.now();
  // performance.now() counts from the navigation: `drawn` is the time from asking for the page to its picture
  window.laminaTimings = { fetch: fetched - t0, render: drawn - fetched, sinceScript: drawn - started,
                           sinceNavigation: drawn };
  document.body.dataset.renderedMs = String(Math.round(drawn - started));
  let layers = 0, bytes = 0;
  const count = (nodes) => nodes.forEach((n) => { if (n.chain_id) { layers++; bytes += n.size; } count(n.children); });
  count(data.forest);
  document.getElementById("summary").textContent =
    `${data.images.length} images · ${layers} layers (${humanSize(bytes)}) · ${data.containers.length} containers` +
    ` · drawn in ${Math.round(drawn - t0)} ms`;
}

function humanSize(n) {  // only for the header's total; every other size comes from the server
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${Number(n.toPrecision(3))}${units[i]}`;
}

function imagesBelow(node, out) {
  for (const img of state.atNode.get(node.chain_id) || []) out.push(img);
  for (const c of node.children) imagesBelow(c, out);
  return out;
}

function drawStore() {
  const root = document.getElementById("store");
  document.getElementById("store-error").hidden = true;
  if (!state.store.forest.length) {
    clear(root, el("p", { class: "muted" }, "The store has no images yet."));
    return;
  }
  // a container whose image is no longer listed (removed with rmi -f) still has its writable layer
  const orphans = state.store.containers.filter((c) => !state.byId.has(c.image_id));
  clear(root, el("div", { class: "forest" }, state.store.forest.map((n) => drawNode(n, 0)),
    orphans.length ? el("div", { class: "node orphans" }, el("div", { class: "tip" },
      orphans.map(drawContainer), el("div", { class: "cap gone" }, "image not listed"))) : null));
}

function drawContainer(c) {
  return el("div", {
    class: "cbox" + (c.state === "running" ? " running" : ""), "data-container-id": c.id,
    title: `container ${c.name} (${c.state}): its writable layer, ${c.size_h}`,
    style: { height: px(c.size_rw) },
    onclick: (ev) => showContainer(ev.currentTarget, c.id),
  }, el("span", {}, c.name), el("span", { class: "muted" }, c.size_h));
}

function drawNode(node, depth) {
  const below = imagesBelow(node, []);
  const tips = (state.atNode.get(node.chain_id) || []).map(drawTip);
  const above = el("div", { class: "above" }, tips, node.children.map((c) => drawNode(c, depth + 1)));
  const layered = node.chain_id !== "";
  const box = el("div", {
    class: `layer d${depth % 4}` + (below.length > 1 ? " shared" : ""),
    "data-diff-id": layered ? node.diff_id : "",
    "data-chain-id": node.chain_id,
    title: layered ? `layer ${depth + 1}: ${node.diff_id}\n${node.size_h}\nin ${below.map(imageLabel).join("; ")}`
                   : "an image without layers",
    style: { height: px(node.size) },
    onclick: layered && below.length ? (ev) => showLayer(ev.currentTarget, node, depth + 1, below[0]) : null,
  }, layered ? [el("span", { class: "id" }, short(node.diff_id)), el("span", { class: "size" }, node.size_h)]
             : el("span", { class: "muted" }, "(no layers)"));
  return el("div", { class: "node" }, above, box);
}

function drawTip(img) {
  const boxes = img.containers.map((id) => state.containers.get(id)).reverse().map(drawContainer);
  const cap = el("div", {
    class: "cap" + (state.picked.includes(img.id) ? " picked" : ""), "data-image-id": img.id,
    title: `${img.id}\n${img.layers} layers, ${img.size_h}\nclick two images to diff them`,
    onclick: () => pick(img.id),
  }, el("span", { class: "name" }, imageLabel(img)), " ", el("span", { class: "muted" }, img.size_h));
  return el("div", { class: "tip" }, boxes, cap);
}

function select(box) {
  document.querySelectorAll(".layer.selected, .cbox.selected").forEach((n) => n.classList.remove("selected"));
  if (box) box.classList.add("selected");
}

// ------------------------------------------------------------------ a layer and its files

async function showLayer(box, node, index, img) {
  select(box);
  const detail = document.getElementById("detail");
  document.getElementById("detail-title").textContent = `Layer ${index} of ${imageLabel(img)}`;
  clear(detail, el("p", { class: "muted" }, "reading the layer…"));
  let report;
  try {
    report = await api("/api/image", { id: img.id });
  } catch (err) { return errorLine(detail, err); }
  const row = report.layers[index - 1];
  const tree = el("ul", { class: "tree", id: "files" });
  clear(detail,
    el("div", { class: "figures" },
      el("span", { class: "mono" }, row.diff_id),
      el("span", {}, `size ${row.size_h}`),
      el("span", { class: "mark A" }, "A"), `${row.added} added`,
      el("span", { class: "mark C" }, "C"), `${row.changed} changed`,
      el("span", { class: "mark D" }, "D"), `${row.deleted} deleted`),
    el("p", { class: "mono" }, row.created_by || "(no history)"),
    el("p", { class: "muted" },
      `image efficiency ${(report.efficiency * 100).toFixed(1)}%, wasted ${report.wasted_h}`),
    tree);
  loadDir(tree, img.id, index, "", 0);
}

async function loadDir(ul, id, index, under, offset) {
  let page;
  try {
    page = await api("/api/files", { id, index, under, offset });
  } catch (err) { ul.append(el("li", { class: "error" }, err.message)); return; }
  if (!page.entries.length && offset === 0) ul.append(el("li", { class: "muted" }, "(empty)"));
  for (const e of page.entries) {
    const name = e.path.slice(e.path.lastIndexOf("/") + 1);
    const li = el("li", { class: e.type === "dir" ? "dir" : "file", "data-path": e.path, "data-mark": e.mark });
    const label = el("span", { class: "name" }, name);
    li.append(el("div", { class: "entry", title: `${e.mark} ${e.path}  ${e.type} ${e.mode} ${e.uid}:${e.gid}` },
      el("span", { class: `mark ${e.mark}` }, e.mark), label,
      e.type !== "file" && e.type !== "dir" ? el("span", { class: "kind" }, `(${e.type})`) : null,
      el("span", { class: "size" }, e.type === "file" ? e.size_h : "")));
    if (e.type === "dir") {
      label.addEventListener("click", () => {
        let sub = li.querySelector(":scope > ul");
        if (sub) { sub.hidden = !sub.hidden; li.classList.toggle("open", !sub.hidden); return; }
        sub = el("ul", { class: "tree" });
        li.append(sub);
        li.classList.add("open");
        loadDir(sub, id, index, e.path, 0);
      });
    }
    ul.append(li);
  }
  if (page.next_offset !== null) {
    const more = el("button", { class: "more", type: "button" },
      `more… (${page.next_offset} of ${page.total} shown)`);
    more.addEventListener("click", () => { more.remove(); loadDir(ul, id, index, under, page.next_offset); });
    ul.append(el("li", {}, more));
  }
}

// ------------------------------------------------------------------ containers and diffs

async function showContainer(box, id) {
  select(box);
  const detail = document.getElementById("detail");
  const c = state.containers.get(id);
  document.getElementById("detail-title").textContent = `Container ${c.name}: its writable layer`;
  clear(detail, el("p", { class: "muted" }, "reading its changes…"));
  try {
    const data = await api("/api/container", { id });
    clear(detail,
      el("p", {}, `${data.container.state} · on ${data.container.image} · writable layer ${data.container.size_h}`),
      changesView(data, (offset) => api("/api/container", { id, offset })));
  } catch (err) { errorLine(detail, err); }
}

function changesView(data, more) {
  const s = data.summary;
  const body = el("tbody", {});
  const wrap = el("div", {},
    el("p", {}, `${s.added} added (+${s.added_bytes_h}), ${s.changed} changed, ${s.deleted} deleted ` +
      `(-${s.deleted_bytes_h}); net ${s.net_h}; ${data.shared_layers} shared layers`),
    el("div", { class: "scroll" }, el("table", { class: "changes" }, body)));
  const addRows = (page) => {
    for (const c of page.changes) {
      const notes = [];
      if (c.kind === "C") {
        if (c.old_type !== c.type) notes.push(`${c.old_type} → ${c.type}`);
        if (c.old_size !== c.size) notes.push(`${c.old_size_h} → ${c.size_h}`);
        if (c.old_mode !== c.mode) notes.push(`mode ${c.old_mode} → ${c.mode}`);
        if (c.old_uid !== c.uid || c.old_gid !== c.gid) notes.push(`owner ${c.old_uid}:${c.old_gid} → ${c.uid}:${c.gid}`);
      } else if (c.type !== "dir" || c.kind === "D") {
        notes.push((c.kind === "A" ? "+" : "-") + c.size_h);
      }
      body.append(el("tr", { "data-kind": c.kind, "data-path": c.path },
        el("td", {}, el("span", { class: `mark ${c.kind}` }, c.kind)),
        el("td", { class: "mono" }, c.path), el("td", { class: "num" }, notes.join(", "))));
    }
    if (page.next_offset !== null) {
      const btn = el("button", { class: "more", type: "button" }, `more… (${page.next_offset} of ${page.total})`);
      btn.addEventListener("click", async () => { btn.remove(); addRows(await more(page.next_offset)); });
      wrap.append(btn);
    }
  };
  if (!data.changes.length) body.append(el("tr", {}, el("td", { class: "muted" }, "no changes")));
  addRows(data);
  return wrap;
}

function fillDiffSelects() {
  for (const sel of [document.getElementById("diff-a"), document.getElementById("diff-b")]) {
    const keep = sel.value;
    clear(sel,
      el("optgroup", { label: "images" }, state.store.images.map((i) => el("option", { value: i.id }, imageLabel(i)))),
      state.store.containers.length
        ? el("optgroup", { label: "containers" },
             state.store.containers.map((c) => el("option", { value: c.id }, `container ${c.name}`)))
        : null);
    if (keep) sel.value = keep;
    else if (sel.id === "diff-b" && sel.options.length > 1) sel.selectedIndex = 1;
  }
}

function pick(id) {
  state.picked = state.picked.filter((p) => p !== id).concat([id]).slice(-2);
  document.querySelectorAll(".cap").forEach((n) => n.classList.toggle("picked", state.picked.includes(n.dataset.imageId)));
  if (state.picked.length === 2) {
    document.getElementById("diff-a").value = state.picked[0];
    document.getElementById("diff-b").value = state.picked[1];
    runDiff(state.picked[0], state.picked[1]);
  }
}

async function runDiff(a, b) {
  const out = document.getElementById("diff");
  const name = (id) => (state.byId.get(id) ? imageLabel(state.byId.get(id))
                                           : `container ${(state.containers.get(id) || { name: id }).name}`);
  clear(out, el("p", { class: "muted" }, "comparing…"));
  try {
    const data = await api("/api/diff", { a, b });
    clear(out, el("p", {}, el("b", {}, name(a)), " → ", el("b", {}, name(b))),
      changesView(data, (offset) => api("/api/diff", { a, b, offset })));
  } catch (err) { errorLine(out, err); }
}

// ------------------------------------------------------------------ builds

async function loadBuilds() {
  const sel = document.getElementById("build-select");
  const out = document.getElementById("build");
  let data;
  try { data = await api("/api/builds"); } catch (err) { return errorLine(out, err); }
  if (!data.builds.length) {
    sel.hidden = true;
    clear(out, el("p", { class: "muted" }, "No build recorded yet (lamina build records why each step hit or missed)."));
    return;
  }
  clear(sel, data.builds.map((b) => el("option", { value: b.id },
    `#${b.id} ${b.image ? short(b.image) : "(failed)"} · ${b.hits} HIT, ${b.misses} MISS · ${new Date(b.created * 1000).toLocaleString()}`)));
  sel.hidden = false;
  showBuild(data.builds[0].id);
}

async function showBuild(id) {
  const out = document.getElementById("build");
  try {
    const b = await api("/api/build", { id });
    clear(out, el("p", { class: "mono muted" }, `${b.context} (${b.dockerfile})`),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "step"), el("th", {}, "instruction"),
                                                  el("th", {}, "cache"), el("th", {}, "why"))),
        el("tbody", {}, b.steps.map((s) => el("tr", { "data-result": s.result },
          el("td", { class: "num" }, `${s.step}/${s.total}`), el("td", { class: "mono" }, s.text),
          el("td", { class: s.result }, s.result), el("td", {}, s.reason))))));
  } catch (err) { errorLine(out, err); }
}

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  // the token now lives in the cookie: keep it out of the address bar and the history
  if (location.search.includes("token=")) history.replaceState(null, "", "/");
  document.getElementById("refresh").addEventListener("click", () => { loadStore(); loadBuilds(); });
  document.getElementById("diff-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runDiff(document.getElementById("diff-a").value, document.getElementById("diff-b").value);
  });
  document.getElementById("build-select").addEventListener("change", (ev) => showBuild(ev.target.value));
  loadStore();
  loadBuilds();
});
