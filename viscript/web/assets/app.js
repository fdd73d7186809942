"use strict";
// skywire dashboard: everything arrives as server-sent "state" events
// (/api/events); the first has every chart's history, the rest the newest
// point of each. Text from the mesh (names, keys, logs) is only ever set
// with textContent, never parsed as HTML.
(function () {
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  let W = 1000, H = 640;     // the graph's view box: wide, or tall on a phone
  let narrow = null;

  let st = null;            // last state
  const series = {};        // name -> [{t, in, out, cpu}]
  let keep = 150;           // points kept per chart (the server says)
  let intervalMs = 2000;    // between samples (the server says)
  let selected = new URLSearchParams(location.search).get("node") || "local";
  let es = null, esNode = null, logES = null;
  const pos = {};           // node key -> {x, y}
  let topo = "";            // nodes and links the layout was made for
  let routeTo = null;       // {key, hops} of the selected node's route

  // ---- human formats ----
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
  }
  function rate(n) { return bytes(n) + "/s"; }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + sec + "s";
    return sec + "s";
  }
  function when(ms) {
    const d = new Date(ms);
    return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) + " " +
      d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  function latency(msv) { return msv < 10 ? msv.toFixed(1) + " ms" : Math.round(msv) + " ms"; }
  function shortKey(k) { return k.length > 14 ? k.slice(0, 11) + "…" : k; }
  function nodeByKey(k) { return st ? st.nodes.find((n) => n.key === k) : null; }
  // A name is a claim, not an identity (docs/SECURITY.md, "Node names"):
  // it is shown only beside its key, and one that several nodes claim says so.
  function label(k) {
    const n = nodeByKey(k);
    if (!n || !n.name) return shortKey(k);
    const lc = n.name.toLowerCase();
    const claims = st.nodes.filter((m) => m.name && m.name.toLowerCase() === lc).length;
    return n.name + (claims > 1 ? " (claimed by " + claims + " nodes)" : "") + " (" + shortKey(k) + ")";
  }
  // graphLabel is label, short enough for the graph: "twin ×2 · pk:405e…"
  // (×N: N nodes claim the name; the legend says so).
  function graphLabel(k) {
    const n = nodeByKey(k);
    if (!n || !n.name) return shortKey(k);
    const lc = n.name.toLowerCase();
    const claims = st.nodes.filter((m) => m.name && m.name.toLowerCase() === lc).length;
    return n.name + (claims > 1 ? " ×" + claims : "") + " · " + k.slice(0, 7) + "…";
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function field(parent, name, value) {
    const s = el("span");
    s.append(el("b", "", name), document.createTextNode(value));
    parent.appendChild(s);
    return s;
  }

  // keyed makes box's children the items, in order, reusing the element
  // of each key (so a click never lands on an element replaced under the
  // pointer): make builds a new one, update fills it in.
  function keyed(box, items, keyOf, make, update) {
    const old = new Map();
    for (const c of [...box.children]) {
      if (c.dataset.k !== undefined) old.set(c.dataset.k, c); else c.remove();
    }
    let prev = null;
    for (const it of items) {
      const k = String(keyOf(it));
      let e = old.get(k);
      if (e) old.delete(k); else { e = make(it); e.dataset.k = k; }
      update(e, it);
      const want = prev ? prev.nextSibling : box.firstChild;
      if (e !== want) box.insertBefore(e, want);
      prev = e;
    }
    for (const e of old.values()) e.remove();
  }
  // note shows one muted line in box instead of items.
  function note(box, text) {
    keyed(box, [text], () => "note", () => el("p", "muted"), (e, t) => { e.textContent = t; });
  }

  // ---- API ----
  async function api(path, body) {
    const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const r = await fetch("/api/" + path, opts);
    let j = {};
    try { j = await r.json(); } catch (e) { /* empty body */ }
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }

  // ---- live stream ----
  function remoteSelected() {
    const n = nodeByKey(selected);
    return selected !== "local" && !(n && n.local);
  }
  function connect() {
    const want = remoteSelected() ? selected : "local";
    if (es && esNode === want) return;
    if (es) es.close();
    esNode = want;
    es = new EventSource("/api/events" + (want === "local" ? "" : "?node=" + encodeURIComponent(want)));
    es.addEventListener("state", (ev) => onState(JSON.parse(ev.data)));
    es.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); document.body.dataset.live = "1"; };
    es.onerror = () => {
      $("live").textContent = "reconnecting"; $("live").classList.remove("on"); document.body.dataset.live = "";
      checkSession();
    };
  }

  function onState(s) {
    const t0 = performance.now();
    if (s.history) keep = s.history;
    if (s.series) {
      for (const k of Object.keys(series)) delete series[k];
      for (const [k, pts] of Object.entries(s.series)) { series[k] = pts; }
    }
    if (s.points) {
      for (const [k, p] of Object.entries(s.points)) {
        const a = series[k] || (series[k] = []);
        if (!a.length || a[a.length - 1].t < p.t) a.push(p);
        while (a.length > keep) a.shift();
      }
    }
    if (s.history) keep = s.history;
    if (s.interval_ms) intervalMs = s.interval_ms;
    st = s;
    if (selected !== "local" && nodeByKey(selected) && nodeByKey(selected).local) selected = "local";
    render();
    // For the figures (docs/dashboard.md): how long a render takes, how
    // old the sample is when drawn, and when the first graph was drawn
    // (ms since navigation started).
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
    document.body.dataset.lagMs = String(Date.now() - s.at);
    if (!document.body.dataset.firstGraphMs && st.nodes.length) document.body.dataset.firstGraphMs = performance.now().toFixed(0);
    document.body.dataset.at = String(s.at);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  function render() {
    $("self").textContent = st.self ? "this node: " + label(st.self) : "node not running";
    $("mesh-error").textContent = st.mesh_error ? "Node: " + st.mesh_error : (st.dir_error ? "Directory: " + st.dir_error : "");
    renderGraph();
    renderNode();
  }

  // ---- graph ----
  function hash(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0) / 4294967296;
  }
  function layout() {
    const keys = st.nodes.map((n) => n.key);
    const t = keys.join(",") + "|" + st.links.map((l) => l.a + l.b).join(",");
    if (t === topo) return;
    topo = t;
    const n = keys.length;
    keys.forEach((k, i) => {
      if (!pos[k]) {
        const a = 2 * Math.PI * (i / Math.max(n, 1)) + hash(k) * 0.5;
        pos[k] = { x: W / 2 + Math.cos(a) * W * 0.35, y: H / 2 + Math.sin(a) * H * 0.35 };
      }
    });
    for (const k of Object.keys(pos)) if (!keys.includes(k)) delete pos[k];
    // Fruchterman-Reingold, a fixed number of rounds, cooling.
    const area = W * H, kk = Math.sqrt(area / Math.max(n, 1)) * 0.75;
    const edges = st.links.filter((l) => pos[l.a] && pos[l.b]);
    let temp = W / 8;
    for (let it = 0; it < 250; it++) {
      const disp = {};
      for (const a of keys) disp[a] = { x: 0, y: 0 };
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const p = pos[keys[i]], q = pos[keys[j]];
          let dx = p.x - q.x, dy = p.y - q.y;
          let d = Math.hypot(dx, dy);
          if (d < 0.01) { dx = hash(keys[i] + it) - 0.5; dy = hash(keys[j] + it) - 0.5; d = 0.01; }
          const f = kk * kk / d;
          disp[keys[i]].x += dx / d * f; disp[keys[i]].y += dy / d * f;
          disp[keys[j]].x -= dx / d * f; disp[keys[j]].y -= dy / d * f;
        }
      }
      for (const e of edges) {
        const p = pos[e.a], q = pos[e.b];
        const dx = p.x - q.x, dy = p.y - q.y, d = Math.max(Math.hypot(dx, dy), 0.01);
        const f = d * d / kk;
        disp[e.a].x -= dx / d * f; disp[e.a].y -= dy / d * f;
        disp[e.b].x += dx / d * f; disp[e.b].y += dy / d * f;
      }
      for (const a of keys) {
        const d = disp[a], len = Math.max(Math.hypot(d.x, d.y), 0.01);
        pos[a].x += d.x / len * Math.min(len, temp);
        pos[a].y += d.y / len * Math.min(len, temp);
        // gravity toward the centre keeps parts that are not linked on screen
        pos[a].x += (W / 2 - pos[a].x) * 0.01;
        pos[a].y += (H / 2 - pos[a].y) * 0.01;
      }
      temp = Math.max(temp * 0.97, 1);
    }
    // fit into the view with a margin for labels
    const xs = keys.map((k) => pos[k].x), ys = keys.map((k) => pos[k].y);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const sx = (W - 160) / Math.max(maxX - minX, 1), sy = (H - 100) / Math.max(maxY - minY, 1), sc = Math.min(sx, sy, 3);
    for (const k of keys) {
      pos[k].x = n === 1 ? W / 2 : 80 + (pos[k].x - minX) * sc + ((W - 160) - (maxX - minX) * sc) / 2;
      pos[k].y = n === 1 ? H / 2 : 40 + (pos[k].y - minY) * sc + ((H - 100) - (maxY - minY) * sc) / 2;
    }
  }

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  let layers = null;
  function renderGraph() {
    const g = $("graph");
    const nw = g.clientWidth > 0 && g.clientWidth < 600;
    if (nw !== narrow) {
      narrow = nw;
      W = nw ? 400 : 1000; H = nw ? 480 : 640;
      g.setAttribute("viewBox", "0 0 " + W + " " + H);
      topo = "";
      for (const k of Object.keys(pos)) delete pos[k];
    }
    layout();
    if (!layers) {
      layers = { edges: svg("g", { id: "edges" }, g), lats: svg("g", { id: "lats" }, g), nodes: svg("g", { id: "nodes" }, g) };
    }
    const inRoute = new Set(), inSel = new Set();
    const pk = (a, b) => a < b ? a + "|" + b : b + "|" + a;
    for (const p of st.paths) for (let i = 0; i + 1 < p.length; i++) inRoute.add(pk(p[i], p[i + 1]));
    if (routeTo && routeTo.key === selected) for (let i = 0; i + 1 < routeTo.hops.length; i++) inSel.add(pk(routeTo.hops[i], routeTo.hops[i + 1]));
    const links = st.links.filter((l) => pos[l.a] && pos[l.b]);
    keyed(layers.edges, links, (l) => pk(l.a, l.b), (l) => {
      const line = svg("line", {});
      line.dataset.a = l.a; line.dataset.b = l.b;
      svg("title", {}, line);
      return line;
    }, (line, l) => {
      const a = pos[l.a], b = pos[l.b], k = pk(l.a, l.b);
      line.setAttribute("x1", a.x); line.setAttribute("y1", a.y); line.setAttribute("x2", b.x); line.setAttribute("y2", b.y);
      line.setAttribute("class", "edge" + (inSel.has(k) ? " selroute" : inRoute.has(k) ? " route" : ""));
      line.firstChild.textContent = label(l.a) + " – " + label(l.b) + ": " + latency(l.rtt_ms);
    });
    keyed(layers.lats, links.length <= 40 ? links : [], (l) => pk(l.a, l.b), () => svg("text", { class: "lat", "text-anchor": "middle" }), (t, l) => {
      const a = pos[l.a], b = pos[l.b];
      t.setAttribute("x", (a.x + b.x) / 2); t.setAttribute("y", (a.y + b.y) / 2 - 4);
      t.textContent = latency(l.rtt_ms);
    });
    const big = st.nodes.length > 25, r = big ? 10 : 16;
    // A big mesh labels only this node, the selected one and its peers
    // (every node's title shows on hover).
    const selKey = selected === "local" ? st.self : selected;
    const near = new Set([st.self, selKey]);
    for (const l of st.links) { if (l.a === selKey) near.add(l.b); if (l.b === selKey) near.add(l.a); }
    keyed(layers.nodes, st.nodes.filter((n) => pos[n.key]), (n) => n.key, (n) => {
      const grp = svg("g", { tabindex: "0", role: "button" });
      grp.dataset.key = n.key;
      svg("circle", {}, grp);
      svg("text", {}, grp);
      svg("title", {}, grp);
      const pick = () => { const m = nodeByKey(grp.dataset.key); select(m && m.local ? "local" : grp.dataset.key); };
      grp.addEventListener("click", pick);
      grp.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
      return grp;
    }, (grp, n) => {
      const p = pos[n.key];
      const isSel = n.key === selected || (selected === "local" && n.local);
      grp.setAttribute("class", "node" + (n.local ? " local" : "") + (isSel ? " selected" : ""));
      grp.setAttribute("transform", "translate(" + p.x.toFixed(1) + "," + p.y.toFixed(1) + ")");
      grp.children[0].setAttribute("r", r);
      grp.children[1].setAttribute("y", r + 17);
      grp.children[1].textContent = !big || near.has(n.key) ? graphLabel(n.key) : "";
      grp.children[2].textContent = (n.name ? n.name + " " : "") + n.key;
    });
    $("graph-count").textContent = st.nodes.length + (st.nodes.length === 1 ? " node, " : " nodes, ") + st.links.length + (st.links.length === 1 ? " link" : " links");
  }

  function select(key) {
    if (key === selected) return;
    selected = key;
    routeTo = null;
    const u = new URL(location.href);
    if (key === "local") u.searchParams.delete("node"); else u.searchParams.set("node", key);
    history.replaceState(null, "", u);
    $("app-error").textContent = "";
    closeLog();
    connect();
    render();
    loadRoute();
  }

  async function loadRoute() {
    $("route").textContent = "";
    if (!remoteSelected()) return;
    const key = selected;
    try {
      const r = await api("route?to=" + encodeURIComponent(key));
      if (key !== selected) return;
      routeTo = { key: key, hops: r.hops };
      $("route").textContent = "Route from this node: " + r.hops.map(label).join(" → ") + " (" + latency(r.latency_ms) + ")";
      renderGraph();
    } catch (e) {
      if (key === selected) $("route").textContent = "Route from this node: " + e.message;
    }
  }

  // ---- node panel ----
  function renderNode() {
    const key = selected === "local" ? st.self : selected;
    const n = key ? nodeByKey(key) : null;
    $("node-title").textContent = selected === "local" ? "This node" + (n && n.name ? ": " + n.name : "") : "Node " + label(key);
    const facts = $("node-facts");
    facts.textContent = "";
    const fact = (k, v, mono) => { facts.append(el("dt", "", k), el("dd", mono ? "mono" : "", v)); };
    if (key) fact("Key", key, true);
    if (n) {
      if (n.name) fact("Name", n.name);
      fact("Addresses", n.addrs.length ? n.addrs.join(", ") : "none advertised");
      if (n.since) fact("In the directory since", when(n.since) + " (" + duration((st.at - n.since) / 1000) + ")");
      fact("Advertised apps", n.apps.length ? n.apps.map((a) => a.name ? a.name + " (port " + a.port + ")" : "port " + a.port).join(", ") : "none");
      const deg = st.links.filter((l) => l.a === key || l.b === key);
      fact("Links", deg.length ? deg.map((l) => label(l.a === key ? l.b : l.a) + " " + latency(l.rtt_ms)).join(", ") : "none");
    } else if (key && selected !== "local") {
      fact("Directory", "not listed by the manager");
    }
    renderApps();
    renderLinks();
  }

  function renderApps() {
    const a = st.apps[remoteSelected() ? selected : "local"];
    const box = $("apps");
    const sel = $("start-name");
    if (!a) { note(box, "loading…"); return; }
    const names = a.catalog.join("\n");
    if (sel.dataset.names !== names) {
      const cur = sel.value;
      sel.textContent = "";
      for (const name of a.catalog) { const o = el("option", "", name); o.value = name; sel.appendChild(o); }
      if (a.catalog.includes(cur)) sel.value = cur;
      sel.dataset.names = names;
    }
    $("start").disabled = !!a.error || !a.catalog.length;
    sel.disabled = !!a.error;
    if (a.error) { note(box, a.error); return; }
    if (!a.apps.length) { note(box, "No apps launched. Start one from the catalog above."); return; }
    keyed(box, a.apps, (app) => "app" + app.id, makeApp, updateApp);
  }

  function makeApp() {
    const it = el("div", "item app");
    const head = el("div", "head");
    head.append(el("span", "name"), el("span", "badge state"), el("span", "badge daemon", "daemon"));
    const row = el("div", "row");
    const btn = (text, cls, fn) => { const b = el("button", cls, text); b.type = "button"; b.onclick = () => fn(it.app); row.appendChild(b); return b; };
    btn("Stop", "danger stop", (app) => act("stop", { id: app.id }, "stop " + app.name));
    btn("Restart", "restart", (app) => act("restart", { id: app.id }, "restart " + app.name));
    btn("Log", "logs", (app) => openLog(app));
    it.append(head, el("div", "fields"), row, chart());
    return it;
  }

  function updateApp(it, app) {
    it.app = app;
    it.dataset.id = app.id;
    it.dataset.name = app.name;
    it.dataset.state = app.state;
    it.querySelector(".name").textContent = app.name + " #" + app.id;
    const badge = it.querySelector(".state");
    badge.className = "badge state " + app.state;
    badge.textContent = app.state;
    it.querySelector(".daemon").hidden = !app.daemon;
    const f = it.querySelector(".fields");
    f.textContent = "";
    if (app.state === "running") {
      field(f, "pid", String(app.pid));
      field(f, "up", duration(app.uptime_s));
      field(f, "CPU", app.cpu_percent.toFixed(1) + " %");
      field(f, "RSS", bytes(app.rss_bytes));
    } else {
      field(f, "started", when(Date.parse(app.started_at)));
      if (app.exit_info) field(f, "exit", app.exit_info);
    }
    field(f, "restarts", String(app.restarts));
    field(f, "signal", app.connected ? "connected" : "not connected");
    if (app.mesh) field(f, "mesh", "↓ " + rate(app.mesh.in_bps) + " ↑ " + rate(app.mesh.out_bps) + " (port " + app.mesh.port + ")");
    if (app.usage_error) field(f, "usage", app.usage_error);
    const live = app.state === "running" || app.state === "backoff";
    it.querySelector(".stop").hidden = !live;
    it.querySelector(".restart").hidden = !live;
    const c = it.querySelector(".chartbox");
    c.hidden = app.state !== "running";
    if (!c.hidden) updateChart(c, app.series, app.mesh ? "bytes" : "cpu");
  }

  function renderLinks() {
    const box = $("links");
    if (remoteSelected()) {
      const deg = st.links.filter((l) => l.a === selected || l.b === selected);
      if (!deg.length) { note(box, "No links reported."); return; }
      keyed(box, deg, (l) => "r" + l.a + l.b, () => {
        const it = el("div", "item link");
        it.append(el("div", "name"), el("div", "fields"));
        return it;
      }, (it, l) => {
        it.querySelector(".name").textContent = label(l.a === selected ? l.b : l.a);
        const f = it.querySelector(".fields");
        f.textContent = "";
        field(f, "latency", latency(l.rtt_ms));
      });
      return;
    }
    if (!st.local_links.length) { note(box, st.mesh_error ? "The node is not running." : "No live links."); return; }
    keyed(box, st.local_links, (l) => "l" + l.peer, (l) => {
      const it = el("div", "item link");
      it.dataset.peer = l.peer;
      const head = el("div", "head");
      const name = el("a", "name");
      name.href = "?node=" + encodeURIComponent(l.peer);
      name.onclick = (e) => { e.preventDefault(); select(l.peer); };
      head.appendChild(name);
      it.append(head, el("div", "fields"), chart());
      return it;
    }, (it, l) => {
      it.querySelector(".name").textContent = label(l.peer);
      const f = it.querySelector(".fields");
      f.textContent = "";
      field(f, "latency", latency(l.rtt_ms));
      field(f, "in", rate(l.in_bps));
      field(f, "out", rate(l.out_bps));
      updateChart(it.querySelector(".chartbox"), l.series, "bytes");
    });
  }

  // chart makes the box of a chart: a canvas and its legend.
  function chart() {
    const wrap = el("div", "chartbox");
    wrap.append(el("canvas", "chart"), el("div", "chartlegend"));
    return wrap;
  }

  // updateChart draws series name: bytes in and out per second, or CPU
  // percent.
  function updateChart(wrap, name, kind) {
    const c = wrap.querySelector("canvas"), leg = wrap.querySelector(".chartlegend");
    c.dataset.series = name;
    const pts = series[name] || [];
    const span = duration(keep * intervalMs / 1000);
    leg.textContent = "";
    if (kind === "bytes") {
      leg.append(el("span", "in", "■ in"), el("span", "out", " ■ out"),
        document.createTextNode(" · last " + span + (pts.length ? ", peak " + rate(Math.max(...pts.map((p) => Math.max(p.in, p.out)))) : "")));
    } else {
      leg.append(el("span", "in", "■ CPU %"), document.createTextNode(" · last " + span + " (not a mesh app)"));
    }
    const last = pts.length ? pts[pts.length - 1] : null;
    c.dataset.n = String(pts.length);
    c.dataset.last = last ? String(kind === "bytes" ? last.in + last.out : last.cpu) : "0";
    c.dataset.t = last ? String(last.t) : "0";
    draw(c, pts, kind);
  }

  function draw(c, pts, kind) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 300, h = c.clientHeight || 56;
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    const g = c.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    g.strokeStyle = "#e2e8f0"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(0, h - 0.5); g.lineTo(w, h - 0.5); g.stroke();
    if (pts.length < 2) return;
    const lines = kind === "bytes" ? [["in", "#2563eb"], ["out", "#ea580c"]] : [["cpu", "#2563eb"]];
    let top = 0;
    for (const p of pts) for (const [k] of lines) top = Math.max(top, p[k] || 0);
    if (top <= 0) top = 1;
    const t1 = pts[pts.length - 1].t, t0 = Math.min(pts[0].t, t1 - 1);
    for (const [k, color] of lines) {
      g.strokeStyle = color; g.lineWidth = 1.5;
      g.beginPath();
      pts.forEach((p, i) => {
        const x = (p.t - t0) / (t1 - t0) * (w - 2) + 1, y = h - 2 - (p[k] || 0) / top * (h - 6);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
    }
  }

  // ---- actions ----
  async function act(what, body, desc) {
    $("app-error").textContent = "";
    body.node = remoteSelected() ? selected : "local";
    try { await api(what, body); } catch (e) { $("app-error").textContent = desc + ": " + e.message; }
  }
  $("start-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("start-name").value;
    if (name) act("start", { name: name }, "start " + name);
  });

  // ---- log ----
  function closeLog() {
    if (logES) { logES.close(); logES = null; }
    $("log-card").hidden = true;
  }
  function openLog(app) {
    closeLog();
    const node = remoteSelected() ? selected : "local";
    $("log-title").textContent = "Log of " + app.name + " #" + app.id;
    const pre = $("log");
    pre.textContent = "";
    $("log-card").hidden = false;
    logES = new EventSource("/api/logs?node=" + encodeURIComponent(node) + "&id=" + app.id);
    logES.addEventListener("log", (ev) => {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = (pre.textContent + JSON.parse(ev.data).text).slice(-65536);
      if (stick) pre.scrollTop = pre.scrollHeight;
    });
    logES.addEventListener("logerror", (ev) => {
      pre.textContent += "\n[" + JSON.parse(ev.data).error + "]";
      logES.close();
    });
    $("log-card").scrollIntoView({ block: "nearest" });
  }
  $("log-close").onclick = closeLog;

  window.addEventListener("resize", () => { if (st) renderGraph(); });

  // ---- start, log in, log out ----
  // loggedOut closes every stream and shows the login form.
  function loggedOut(note) {
    if (es) { es.close(); es = null; esNode = null; }
    closeLog();
    $("main").hidden = true;
    $("logout").hidden = true;
    $("live").textContent = "offline"; $("live").classList.remove("on"); document.body.dataset.live = "";
    $("self").textContent = "logged out";
    $("login-note").textContent = note || "";
    $("login-error").textContent = "";
    $("login").hidden = false;
    $("token").focus();
  }
  // checkSession: a stream that fails may mean the session ended (Log
  // out in another tab, or it expired): then show the login form.
  let checking = false;
  async function checkSession() {
    if (checking) return;
    checking = true;
    try {
      const s = await api("session");
      if (s.login_required && !s.logged_in) loggedOut("Your session ended: log in again.");
    } catch (e) { /* offline: the stream retries */ }
    checking = false;
  }
  async function start() {
    let s = { login_required: false, logged_in: true };
    try { s = await api("session"); } catch (e) { $("self").textContent = e.message; }
    if (s.login_required && !s.logged_in) {
      loggedOut();
      return;
    }
    $("logout").hidden = !s.login_required;
    $("main").hidden = false;
    connect();
    loadRoute();
  }
  $("logout").addEventListener("click", async () => {
    // Close the streams first: the server ends them with the session, and
    // one that reconnected would be refused.
    if (es) { es.close(); es = null; esNode = null; }
    closeLog();
    try {
      await api("logout", {});
      loggedOut("Logged out.");
    } catch (err) {
      $("self").textContent = "log out failed: " + err.message;
      connect();
    }
  });
  $("login").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("login", { token: $("token").value });
      $("login").hidden = true;
      $("token").value = "";
      start();
    } catch (err) { $("login-error").textContent = err.message; }
  });
  start();
})();
