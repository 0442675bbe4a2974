/* The explorer of a slimmer report (slimmer/render/html.py writes the page and this script
   into it; explorer_data there documents the data). A treemap of the final filesystem or of
   one layer's changes that zooms into directories, coloured by category or by change, a
   search, and the files of each finding. Strings from the image are only ever shown with
   textContent, never parsed as markup. Nothing is fetched: the data is in the page. */
(() => {
  "use strict";

  const MIN_AREA = 64; // px²: children smaller than this join one "small entries" box per directory
  const HEADER = 16; // px: the label strip of a directory
  const MAX_DEPTH = 12; // directory levels drawn below the zoomed one
  const MAX_BOXES = 4000; // boxes drawn at most
  const LIST_ROWS = 100;
  const MARKS = ["+", "~", "-"];
  const MARK_NAMES = { "+": "added", "~": "modified", "-": "removed" };
  const MARK_CLASS = { "+": "add", "~": "mod", "-": "rem" };

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // byte counts as slimmer.render.human writes them (decimal units, as docker and dive)
  function human(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
  }
  const NUMBER = new Intl.NumberFormat("en-US"); // toLocaleString makes a formatter each time: slow
  const count = (n) => NUMBER.format(n);
  const plural = (n, one, many) => `${count(n)} ${n === 1 ? one : many || `${one}s`}`;
  const entries = (n) => plural(n, "entry", "entries");

  async function unpack() {
    const text = $("slimmer-data").textContent.trim();
    let bytes;
    if (Uint8Array.fromBase64) {
      bytes = Uint8Array.fromBase64(text);
    } else {
      const raw = atob(text);
      bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    }
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // ---- the tree and its views ----------------------------------------------------------------

  let D; // the data
  let N; // nodes
  let OTHER; // the index of the category "other"
  let parent, depth, kidStart, kids;
  let paths = null, lowPaths = null; // built on the first search
  // colour: of the final view (always by category) and of the layers' views (by change, or as picked)
  const S = { view: 0, zoom: 0, colour: "category", layerColour: "change", query: "", finding: null, claims: null,
    sel: -1, hits: null };
  let V; // the current view, derived
  let drawn = 0; // boxes in the map

  function build(d) {
    D = d;
    N = d.names.length;
    OTHER = Math.max(0, d.categories.indexOf("other"));
    parent = new Int32Array(N);
    depth = new Int32Array(N);
    parent[0] = -1;
    const nkids = new Int32Array(N);
    for (let n = 1; n < N; n++) {
      parent[n] = n - d.up[n];
      depth[n] = depth[parent[n]] + 1;
      nkids[parent[n]]++;
    }
    kidStart = new Int32Array(N + 1);
    for (let n = 0; n < N; n++) kidStart[n + 1] = kidStart[n] + nkids[n];
    kids = new Int32Array(Math.max(0, N - 1));
    const fill = kidStart.slice(0, N);
    for (let n = 1; n < N; n++) kids[fill[parent[n]]++] = n;
    D.views = d.views.map((v) => {
      const nodes = new Int32Array(v.node.length);
      let at = 0;
      for (let k = 0; k < nodes.length; k++) nodes[k] = at += v.node[k];
      return { nodes, size: v.size, cat: v.cat, layer: v.layer, mark: v.mark || null, pkg: v.pkg || null };
    });
  }

  function path(n) {
    if (!paths) {
      paths = new Array(N);
      paths[0] = "";
      for (let m = 1; m < N; m++) paths[m] = parent[m] ? `${paths[parent[m]]}/${D.names[m]}` : D.names[m];
    }
    return paths[n];
  }

  function lowPath(n) {
    if (!lowPaths) {
      lowPaths = new Array(N);
      for (let m = 0; m < N; m++) lowPaths[m] = path(m).toLowerCase();
    }
    return lowPaths[n];
  }

  /* What one view shows, summed up the tree: bytes and entries below every node, and per
     node the bytes of each colour key (categories, or the three marks). */
  function derive(v) {
    const at = new Int32Array(N).fill(-1);
    const tot = new Float64Array(N);
    const cnt = new Int32Array(N);
    const byChange = S.colour === "change" && v.mark !== null;
    const keys = byChange ? MARKS.length : D.categories.length;
    const mix = new Float64Array(N * keys);
    for (let i = 0; i < v.nodes.length; i++) {
      const n = v.nodes[i];
      at[n] = i;
      tot[n] += v.size[i];
      cnt[n] += 1;
      mix[n * keys + keyOf(v, i, byChange)] += v.size[i];
    }
    for (let n = N - 1; n > 0; n--) {
      if (!cnt[n]) continue;
      const p = parent[n];
      tot[p] += tot[n];
      cnt[p] += cnt[n];
      for (let k = 0; k < keys; k++) mix[p * keys + k] += mix[n * keys + k];
    }
    return { v, at, tot, cnt, mix, keys, byChange, sorted: new Map() };
  }

  /* The colour key of entry i of view v: its mark, or its category ("other" if it has none). */
  function keyOf(v, i, byChange) {
    if (byChange) return Math.max(0, MARKS.indexOf(v.mark[i]));
    const c = v.cat.charCodeAt(i) - 97;
    return c >= 0 && c < D.categories.length ? c : OTHER;
  }

  /* The children of n that this view shows, the most bytes first. */
  function shownKids(n) {
    let out = V.sorted.get(n);
    if (!out) {
      out = [];
      for (let j = kidStart[n]; j < kidStart[n + 1]; j++) if (V.cnt[kids[j]]) out.push(kids[j]);
      const tot = V.tot;
      out.sort((a, b) => tot[b] - tot[a] || a - b);
      V.sorted.set(n, out);
    }
    return out;
  }

  function dominant(n) {
    const k = V.keys;
    let best = -1, bytes = 0;
    for (let i = 0; i < k; i++) {
      if (V.mix[n * k + i] > bytes) {
        bytes = V.mix[n * k + i];
        best = i;
      }
    }
    return best;
  }

  function colourClass(key) {
    if (key < 0) return "c-other";
    return V.byChange ? `m-${MARK_CLASS[MARKS[key]]}` : `c-${D.categories[key]}`;
  }

  function keyName(key) {
    if (key < 0) return "";
    return V.byChange ? MARK_NAMES[MARKS[key]] : D.categories[key];
  }

  function mostly(n) {
    const k = V.keys, total = V.tot[n];
    const parts = [];
    for (let i = 0; i < k; i++) if (V.mix[n * k + i] > 0) parts.push([V.mix[n * k + i], i]);
    parts.sort((a, b) => b[0] - a[0]);
    return parts.slice(0, 3).map(([b, i]) => `${keyName(i)} ${total ? Math.round((100 * b) / total) : 0}%`).join(", ");
  }

  // ---- the squarified treemap (Bruls, Huizing, van Wijk 2000) ----------------------------------

  // the worst aspect ratio in a row of areas (its smallest, largest and sum) along a side
  function worst(min, max, sum, side) {
    return Math.max((side * side * max) / (sum * sum), (sum * sum) / (side * side * min));
  }

  /* One rectangle [x, y, w, h] per size (sizes sorted largest first) filling the one given. */
  function squarify(sizes, x, y, w, h) {
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total <= 0 || w <= 0 || h <= 0) return sizes.map(() => [x, y, 0, 0]);
    const areas = sizes.map((s) => (s * w * h) / total);
    const out = [];
    let row = [], sum = 0, min = Infinity, max = 0, i = 0;
    while (i < areas.length) {
      const side = Math.min(w, h);
      const a = areas[i];
      if (!row.length || worst(Math.min(min, a), Math.max(max, a), sum + a, side) <= worst(min, max, sum, side)) {
        row.push(a);
        sum += a;
        min = Math.min(min, a);
        max = Math.max(max, a);
        i++;
        continue;
      }
      [x, y, w, h] = layRow(row, sum, x, y, w, h, out);
      row = [];
      sum = 0;
      min = Infinity;
      max = 0;
    }
    if (row.length) layRow(row, sum, x, y, w, h, out);
    return out;
  }

  function layRow(row, sum, x, y, w, h, out) {
    if (w >= h) {
      const cw = h ? sum / h : 0;
      let cy = y;
      for (const a of row) {
        const rh = cw ? a / cw : 0;
        out.push([x, cy, cw, rh]);
        cy += rh;
      }
      return [x + cw, y, w - cw, h];
    }
    const rh = w ? sum / w : 0;
    let cx = x;
    for (const a of row) {
      const rw = rh ? a / rh : 0;
      out.push([cx, y, rw, rh]);
      cx += rw;
    }
    return [x, y + rh, w, h - rh];
  }

  // ---- drawing -----------------------------------------------------------------------------

  function draw() {
    const map = $("map");
    const width = map.clientWidth;
    const height = Math.round(Math.min(680, Math.max(300, width * 0.56)));
    map.style.height = `${height}px`;
    const out = document.createDocumentFragment();
    drawn = 0;
    if (V.tot[S.zoom] > 0) {
      layChildren(S.zoom, 0, 0, width, height, 0, out);
    } else {
      out.append(el("div", "empty", V.cnt[S.zoom] ? "nothing here holds bytes" : "nothing here"));
    }
    map.replaceChildren(out);
    map.dataset.boxes = String(drawn);
  }

  /* Lay out the children of n in the rectangle given: each one large enough as its own box,
     the rest (and n's own entry, if n is also one) as one box. */
  function layChildren(n, x, y, w, h, level, out) {
    const shown = shownKids(n);
    const scale = (w * h) / V.tot[n];
    let cut = 0; // shown is sorted, so what is too small is the tail
    while (cut < shown.length && V.tot[shown[cut]] * scale >= MIN_AREA && drawn + cut < MAX_BOXES) cut++;
    const drawnKids = shown.slice(0, cut);
    const items = drawnKids.map((k) => [V.tot[k], k]);
    let restBytes = V.tot[n], restCount = V.cnt[n];
    for (const [bytes, k] of items) {
      restBytes -= bytes;
      restCount -= V.cnt[k];
    }
    if (restBytes > 0) items.push([restBytes, -1]);
    items.sort((a, b) => b[0] - a[0]);
    const rects = squarify(items.map((it) => it[0]), x, y, w, h);
    items.forEach(([, k], i) => {
      if (k >= 0) layNode(k, rects[i], level, out);
      else layRest(n, drawnKids, restCount, restBytes, rects[i], out);
    });
  }

  function layNode(n, [x, y, w, h], level, out) {
    let label = D.names[n], m = n;
    for (;;) { // a directory holding one thing and nothing else is one box: a/b/c
      const ks = shownKids(m);
      if (ks.length !== 1 || V.at[m] >= 0) break;
      m = ks[0];
      label += `/${D.names[m]}`;
    }
    if (!shownKids(m).length) {
      leaf(out, m, x, y, w, h, label, "file");
      return;
    }
    const strip = h > 2.5 * HEADER && w > 36 ? HEADER : 0;
    const inner = (w - 4) * (h - (strip || 2) - 2);
    // a frame only when one child at least gets a box of its own; else the directory is one box
    const room = level < MAX_DEPTH && inner > 0 && drawn < MAX_BOXES &&
      (V.tot[shownKids(m)[0]] * inner) / V.tot[m] >= MIN_AREA;
    if (!room) {
      leaf(out, m, x, y, w, h, `${label}/`, "dir");
      return;
    }
    const frame = box(out, "box dir", x, y, w, h, m, "dir");
    if (strip) frame.append(el("span", "l", `${label}/ · ${human(V.tot[m])}`));
    if (S.hits && S.hits.hit[m]) frame.classList.add("hit");
    else if (S.hits) frame.classList.add("dim");
    layChildren(m, x + 2, y + (strip || 2), w - 4, h - (strip || 2) - 2, level + 1, out);
  }

  function leaf(out, n, x, y, w, h, label, kind) {
    const key = dominant(n);
    const b = box(out, `box ${colourClass(key)}`, x, y, w, h, n, kind);
    const v = V.v, i = V.at[n];
    let detail = human(V.tot[n]);
    if (kind === "file" && i >= 0) {
      const c = D.categories[v.cat.charCodeAt(i) - 97];
      if (c) detail += ` · ${c}`;
      if (v.mark) detail += ` · ${MARK_NAMES[v.mark[i]]}`;
      if (v.mark && v.mark[i] === "-") b.classList.add("gone");
    } else if (key >= 0) {
      detail += ` · ${V.byChange ? `mostly ${keyName(key)}` : keyName(key)}`;
    }
    labels(b, label, detail, w, h);
    if (S.hits) b.classList.add(S.hits.hit[n] ? "hit" : "dim");
  }

  /* The box of what is too small to draw below n (its small children, and n's own entry):
     what n holds less what its drawn children hold. */
  function layRest(n, drawnKids, number, bytes, [x, y, w, h], out) {
    const k = V.keys;
    const mix = V.mix.slice(n * k, n * k + k);
    let hits = S.hits ? S.hits.hit[n] : 0;
    for (const c of drawnKids) {
      for (let i = 0; i < k; i++) mix[i] -= V.mix[c * k + i];
      if (S.hits) hits -= S.hits.hit[c];
    }
    let best = -1;
    for (let i = 0, top = 0; i < k; i++) if (mix[i] > top) [top, best] = [mix[i], i];
    const hit = hits > 0;
    const b = box(out, `box rest ${colourClass(best)}`, x, y, w, h, n, "rest");
    b.dataset.count = String(number);
    b.dataset.bytes = String(bytes);
    labels(b, `${count(number)} small`, human(bytes), w, h);
    if (S.hits) b.classList.add(hit ? "hit" : "dim");
  }

  function box(out, cls, x, y, w, h, n, kind) {
    const b = el("div", cls);
    b.style.cssText = `left:${x.toFixed(1)}px;top:${y.toFixed(1)}px;width:${Math.max(0, w).toFixed(1)}px;` +
      `height:${Math.max(0, h).toFixed(1)}px`;
    b.dataset.n = String(n);
    b.dataset.kind = kind;
    if (n === S.sel && kind !== "rest") b.classList.add("sel");
    out.append(b);
    drawn++;
    return b;
  }

  function labels(b, name, detail, w, h) {
    if (w < 34 || h < 13) return;
    if (h >= 27) {
      b.append(el("span", "l", name), el("span", "l s", detail));
    } else {
      b.append(el("span", "l", w >= 130 ? `${name}  ${detail}` : name));
    }
  }

  function tip(b) {
    const n = Number(b.dataset.n);
    const where = `/${path(n)}`;
    if (b.dataset.kind === "rest") {
      return `${n ? where : ""}/… ${entries(Number(b.dataset.count))} too small to draw, ` +
        `${human(Number(b.dataset.bytes))} (zoom in, or search)`;
    }
    if (b.dataset.kind === "dir") return `${where}/ — ${human(V.tot[n])} in ${plural(V.cnt[n], "file")} (${mostly(n)})`;
    return `${where} — ${describe(n)}`;
  }

  // ---- what is shown around the map ------------------------------------------------------------

  function describe(n) {
    const v = V.v, i = V.at[n];
    if (i < 0) return `${human(V.tot[n])} in ${plural(V.cnt[n], "file")}`;
    const parts = [human(v.size[i])];
    const c = v.cat.charCodeAt(i) - 97;
    if (c >= 0 && c < D.categories.length) parts.push(D.categories[c]);
    if (v.pkg && v.pkg[i] >= 0) parts.push(`package ${D.packages[v.pkg[i]]}`);
    if (v.mark) {
      const m = v.mark[i];
      parts.push(m === "-" ? `removed by layer ${layerOfView()} (it came from layer ${v.layer[i]})` :
        `${MARK_NAMES[m]} by layer ${v.layer[i]}`);
    } else {
      parts.push(`from layer ${v.layer[i]}`);
    }
    return parts.join(" · ");
  }

  function layerOfView() {
    return S.view ? D.layers[S.view - 1].index : null;
  }

  function crumbs() {
    const nav = $("crumbs");
    const chain = [];
    for (let n = S.zoom; n > 0; n = parent[n]) chain.unshift(n);
    const items = [];
    const root = el("button", "", "/");
    root.type = "button";
    root.dataset.zoom = "0";
    root.title = "the whole filesystem";
    items.push(chain.length ? root : el("span", "here", "/"));
    chain.forEach((n, i) => {
      if (i) items.push(el("span", "sep", "/"));
      if (i === chain.length - 1) {
        items.push(el("span", "here", D.names[n]));
      } else {
        const b = el("button", "", D.names[n]);
        b.type = "button";
        b.dataset.zoom = String(n);
        items.push(b);
      }
    });
    items.push(el("span", "meta", `  ${human(V.tot[S.zoom])} in ${plural(V.cnt[S.zoom], "file")}`));
    nav.replaceChildren(...items);
  }

  function legend() {
    const k = V.keys;
    const items = [];
    for (let i = 0; i < k; i++) {
      const bytes = V.mix[S.zoom * k + i];
      if (!(bytes > 0)) continue;
      const item = el("span", "item");
      item.append(el("span", `sw ${colourClass(i)}`), `${keyName(i)} ${human(bytes)}`);
      items.push([bytes, item]);
    }
    items.sort((a, b) => b[0] - a[0]);
    $("legend").replaceChildren(...items.map((it) => it[1]));
  }

  function summary() {
    const v = V.v;
    const out = $("vsum");
    if (!v.mark) {
      out.textContent = `The final filesystem: ${plural(v.nodes.length, "file")}, ${human(V.tot[0])}.`;
      return;
    }
    const by = { "+": [0, 0], "~": [0, 0], "-": [0, 0] };
    for (let i = 0; i < v.nodes.length; i++) {
      const m = by[v.mark[i]];
      if (m) {
        m[0]++;
        m[1] += v.size[i];
      }
    }
    const layer = D.layers[S.view - 1];
    const what = MARKS.map((m) => `${MARK_NAMES[m]} ${plural(by[m][0], "file")} (${human(by[m][1])})`).join(" · ");
    out.replaceChildren(el("b", "", `Layer ${layer.index}: `), `${what}. `, el("code", "", layer.step || "(no step)"));
  }

  function details() {
    const out = $("sel");
    const n = S.sel;
    if (n < 0 || (V.at[n] < 0 && !V.cnt[n])) {
      out.textContent = "";
      return;
    }
    const isFile = V.at[n] >= 0 && !shownKids(n).length;
    out.replaceChildren(el("code", "", `/${path(n)}${isFile ? "" : "/"}`),
      ` — ${isFile ? describe(n) : `${human(V.tot[n])} in ${plural(V.cnt[n], "file")} (${mostly(n)})`}`);
  }

  /* The (at most) ``top`` of ``items`` with the largest ``size[item]``, largest first. */
  function largest(items, size, top) {
    let keep = items.slice();
    if (items.length > top) {
      const sizes = Float64Array.from(items, (i) => size[i]).sort();
      const bound = sizes[sizes.length - top];
      keep = items.filter((i) => size[i] >= bound);
    }
    return keep.sort((a, b) => size[b] - size[a] || a - b);
  }

  function row(n, cells) {
    const tr = el("tr", "go");
    tr.dataset.n = String(n);
    for (const [cls, text] of cells) tr.append(el("td", cls, text));
    return tr;
  }

  /* Under the map: what the search or the finding found, largest first; else what the
     zoomed directory holds. */
  function list() {
    const v = V.v;
    const rows = [];
    let caption, heads;
    if (S.hits) {
      heads = ["path", "size", "category", "layer"];
      const found = largest(S.hits.list, v.size, LIST_ROWS);
      caption = !S.hits.count ? "Nothing in this view matches." :
        `${S.hits.count > LIST_ROWS ? `The largest ${LIST_ROWS} of ` : ""}${plural(S.hits.count, "match", "matches")}` +
        ` in this view`;
      for (const i of found.slice(0, LIST_ROWS)) {
        const n = v.nodes[i];
        const mark = v.mark ? [["mk", v.mark[i]]] : [];
        rows.push(row(n, [...mark, ["p", `/${path(n)}`], ["n", human(v.size[i])],
          ["", D.categories[v.cat.charCodeAt(i) - 97] || ""], ["n", String(v.layer[i])]]));
      }
    } else {
      heads = ["name", "size", "files", "mostly"];
      const shown = shownKids(S.zoom);
      caption = !shown.length ? "" : `In /${path(S.zoom)}${S.zoom ? "/" : ""}: ${entries(shown.length)}` +
        (shown.length > LIST_ROWS ? `, the largest ${LIST_ROWS}` : "");
      for (const n of shown.slice(0, LIST_ROWS)) {
        const dir = shownKids(n).length > 0;
        const mark = v.mark ? [["mk", V.at[n] >= 0 && !dir ? v.mark[V.at[n]] : ""]] : [];
        rows.push(row(n, [...mark, ["p", D.names[n] + (dir ? "/" : "")], ["n", human(V.tot[n])],
          ["n", dir ? count(V.cnt[n]) : ""], ["", dir ? mostly(n) : keyName(dominant(n))]]));
      }
    }
    const head = el("tr");
    if (v.mark) head.append(el("th", "mk", ""));
    for (const h of heads) head.append(el("th", "", h));
    $("list").replaceChildren(el("caption", "", caption), ...(rows.length ? [head, ...rows] : []));
    $("list").hidden = !caption;
  }

  function refresh() {
    draw();
    crumbs();
    legend();
    details();
    list();
  }

  // ---- search and findings -----------------------------------------------------------------

  /* The tests of one search line: every word must hold. A word with * or ? is a glob on the
     name (on the path if it has a /); any other word a substring of the path; a word in lower
     case matches either case. Paths are written without their leading /. */
  function matcher(line) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    return words.map((word) => {
      const fold = word === word.toLowerCase();
      const pat = word.replace(/^\/+/, "");
      if (/[*?]/.test(pat)) {
        const source = pat.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
        const rx = new RegExp(`^${source}$`, fold ? "i" : "");
        return pat.includes("/") ? (n) => rx.test(path(n)) : (n) => rx.test(D.names[n]);
      }
      return fold ? (n) => lowPath(n).includes(pat) : (n) => path(n).includes(pat);
    });
  }

  function findHits() {
    const tests = matcher(S.query);
    const claims = S.claims;
    if (!tests.length && !claims) {
      S.hits = null;
      return;
    }
    const v = V.v;
    const hit = new Int32Array(N); // matches at or below each node
    const found = [];
    let bytes = 0;
    for (let i = 0; i < v.nodes.length; i++) {
      const n = v.nodes[i];
      if (claims) {
        const layers = claims.get(n);
        if (!layers || !layers.has(v.layer[i])) continue;
      }
      if (!tests.every((t) => t(n))) continue;
      hit[n] = 1;
      found.push(i);
      bytes += v.size[i];
    }
    for (let n = N - 1; n > 0; n--) hit[parent[n]] += hit[n];
    S.hits = { hit, list: found, count: found.length, bytes };
  }

  function showHits(zoomToThem) {
    performance.mark("slimmer-search");
    findHits();
    performance.measure("slimmer-find", "slimmer-search");
    const qn = $("qn");
    qn.textContent = S.hits && S.query.trim() ? `${plural(S.hits.count, "file")}, ${human(S.hits.bytes)}` : "";
    if (S.hits && S.hits.count && (zoomToThem || !S.hits.hit[S.zoom])) {
      S.zoom = commonDir(S.hits.list.map((i) => V.v.nodes[i]));
    }
    findingBar();
    refresh();
    performance.measure("slimmer-shown", "slimmer-search");
  }

  function commonDir(nodes) {
    let a = nodes[0];
    for (const b0 of nodes) {
      let b = b0;
      while (depth[a] > depth[b]) a = parent[a];
      while (depth[b] > depth[a]) b = parent[b];
      while (a !== b) {
        a = parent[a];
        b = parent[b];
      }
      if (a === 0) break;
    }
    if (!shownKids(a).length) a = parent[a]; // one file: its directory
    return Math.max(0, a);
  }

  function showFinding(k) {
    const f = D.findings[k];
    if (!f || !f.claims.length) return;
    S.finding = k;
    S.claims = new Map();
    for (const [layer, n] of f.claims) {
      if (!S.claims.has(n)) S.claims.set(n, new Set());
      S.claims.get(n).add(layer);
    }
    document.querySelectorAll(".finding.on").forEach((e) => e.classList.remove("on"));
    const card = $(`finding-${k}`);
    if (card) card.classList.add("on");
    setView(viewOfLayer(f.layers[0]), true);
    $("explorer").scrollIntoView({ block: "start" });
  }

  function findingBar() {
    const bar = $("fbar");
    if (S.finding === null) {
      bar.hidden = true;
      bar.replaceChildren();
      return;
    }
    const f = D.findings[S.finding];
    const items = [el("b", "", `Finding ${S.finding + 1}: `), f.title, ` — here ${plural(S.hits ? S.hits.count : 0, "file")}`
      + ` (${human(S.hits ? S.hits.bytes : 0)}) in ${S.view ? `layer ${layerOfView()}` : "the final filesystem"}.`];
    const others = f.layers.filter((l) => l !== layerOfView());
    if (others.length) items.push(" Its files are also in layer:");
    for (const l of others) {
      const b = el("button", "", String(l));
      b.type = "button";
      b.dataset.layer = String(l);
      items.push(b);
    }
    const clear = el("button", "", "clear");
    clear.type = "button";
    clear.dataset.clear = "1";
    items.push(clear);
    bar.replaceChildren(...items);
    bar.hidden = false;
  }

  function clearFinding() {
    S.finding = null;
    S.claims = null;
    document.querySelectorAll(".finding.on").forEach((e) => e.classList.remove("on"));
  }

  // ---- changes of state ------------------------------------------------------------------------

  function viewOfLayer(layer) {
    const i = D.layers.findIndex((l) => l.index === layer);
    return i < 0 ? 0 : i + 1;
  }

  function setView(i, zoomToHits) {
    S.view = Math.max(0, Math.min(D.views.length - 1, i));
    $("view").value = String(S.view);
    S.colour = D.views[S.view].mark ? S.layerColour : "category";
    $("colour").value = S.colour;
    $("colour").disabled = !D.views[S.view].mark;
    V = derive(D.views[S.view]);
    while (S.zoom > 0 && !V.cnt[S.zoom]) S.zoom = parent[S.zoom];
    summary();
    showHits(zoomToHits);
  }

  function zoomTo(n) {
    if (n < 0 || n >= N) return;
    while (shownKids(n).length === 1 && V.at[n] < 0 && shownKids(shownKids(n)[0]).length) n = shownKids(n)[0];
    S.zoom = n;
    refresh();
  }

  /* Select n; if the map does not show it as a box of its own, zoom to its directory. */
  function select(n) {
    S.sel = n;
    if (!$("map").querySelector(`.box[data-n="${n}"]:not([data-kind="rest"])`)) S.zoom = Math.max(0, parent[n]);
    refresh();
  }

  function onMapClick(e) {
    const b = e.target.closest(".box");
    if (!b) return;
    const n = Number(b.dataset.n);
    if (b.dataset.kind === "dir") zoomTo(n);
    else if (b.dataset.kind === "rest") {
      if (n !== S.zoom) zoomTo(n);
    } else select(n);
  }

  function onListClick(e) {
    const tr = e.target.closest("tr.go");
    if (!tr) return;
    const n = Number(tr.dataset.n);
    if (shownKids(n).length && !S.hits) zoomTo(n);
    else select(n);
  }

  function onKey(e) {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
    if (e.key === "Escape") {
      if (e.target.id === "q" && S.query) return; // the search box clears itself (a search event follows)
      $("q").value = "";
      S.query = "";
      clearFinding();
      showHits(false);
      if (typing) e.target.blur();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") {
      e.preventDefault();
      $("q").focus();
    } else if (e.key === "Backspace" || e.key === "u") {
      e.preventDefault();
      if (S.zoom > 0) zoomTo(parent[S.zoom]);
    } else if (e.key === "[" || e.key === "]") {
      setView(S.view + (e.key === "]" ? 1 : -1), false);
    } else if (e.key === "c" && D.views[S.view].mark) {
      S.layerColour = S.colour === "change" ? "category" : "change";
      setView(S.view, false);
    }
  }

  function onPageClick(e) {
    const t = e.target.closest("button");
    if (!t) return;
    if (t.dataset.zoom !== undefined) zoomTo(Number(t.dataset.zoom));
    else if (t.dataset.finding !== undefined) showFinding(Number(t.dataset.finding));
    else if (t.dataset.clear) {
      clearFinding();
      showHits(false);
    } else if (t.dataset.layer !== undefined) {
      setView(viewOfLayer(Number(t.dataset.layer)), S.finding !== null);
      if (!t.closest("#fbar")) $("explorer").scrollIntoView({ block: "start" });
    }
  }

  function options() {
    const select = $("view");
    const all = D.views[0];
    let total = 0;
    for (const s of all.size) total += s;
    const first = el("option", "", `Final filesystem · ${human(total)} · ${plural(all.nodes.length, "file")}`);
    first.value = "0";
    const items = [first];
    D.layers.forEach((l, i) => {
      const step = l.step.length > 70 ? `${l.step.slice(0, 69)}…` : l.step;
      const o = el("option", "", `Layer ${l.index} · ${human(l.size)} · ${step || "(no step)"}`);
      o.value = String(i + 1);
      items.push(o);
    });
    select.replaceChildren(...items);
  }

  async function start() {
    performance.mark("slimmer-start");
    const data = await unpack();
    performance.mark("slimmer-unpacked");
    build(data);
    performance.mark("slimmer-built");
    options();
    $("view").addEventListener("change", (e) => setView(Number(e.target.value), S.finding !== null));
    $("colour").addEventListener("change", (e) => {
      S.layerColour = e.target.value;
      setView(S.view, false);
    });
    let timer = 0;
    const q = $("q");
    const search = () => {
      clearTimeout(timer);
      if (q.value === S.query) return;
      S.query = q.value;
      showHits(true);
    };
    q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    q.addEventListener("search", search);
    q.addEventListener("keydown", (e) => {
      if (e.key === "Enter") search();
    });
    $("map").addEventListener("click", onMapClick);
    $("map").addEventListener("mouseover", (e) => {
      const b = e.target.closest(".box");
      if (b && !b.title) b.title = tip(b);
    });
    $("list").addEventListener("click", onListClick);
    document.addEventListener("click", onPageClick);
    document.addEventListener("keydown", onKey);
    let resize = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(draw, 120);
    });
    setView(0, false);
    performance.mark("slimmer-ready");
    document.documentElement.dataset.ready = String(Math.round(performance.now()));
  }

  start().catch((err) => {
    const map = $("map");
    const why = typeof DecompressionStream === "undefined"
      ? "this browser cannot unpack the page's data (it needs DecompressionStream: Chromium 80, Firefox 113, " +
        "Safari 16.4 or later)" : String(err);
    map.replaceChildren(el("div", "empty", `The explorer could not start: ${why}.`));
    document.documentElement.dataset.ready = "failed";
  });
})();
