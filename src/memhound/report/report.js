/* memhound HTML report.
 *
 * Input: the JSON document in <script id="mh-data"> (built by report/html.py):
 *   flame: {frames: [[file, line, func]...], nodes: [parent, frame, size, count, ...]}
 *          a call tree already aggregated and pruned in Python (parents first);
 *   sites: [[file, line, func, size, count]...]; timeline: {unit, points: [[t, cur, peak]], marks};
 *   leaks: leak report dicts ("memhound leaks --json").
 * The flame graph is one canvas redrawn on demand, so its cost depends on the
 * number of tree nodes (bounded in Python), never on the number of traces.
 */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("mh-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var state = window.__mh = { flameLabels: [], chartLabels: [], rendered: {} };

  function fmtSize(n) {
    var sign = n < 0 ? "-" : "";
    n = Math.abs(n);
    if (n < 1024) return sign + Math.round(n) + " B";
    var units = ["KiB", "MiB", "GiB", "TiB"];
    for (var i = 0; i < units.length; i++) {
      n /= 1024;
      if (Math.round(n * 10) / 10 < 1024 || i === units.length - 1) return sign + n.toFixed(1) + " " + units[i];
    }
  }
  function fmtCount(n) { return Number(n).toLocaleString("en-US"); }
  function fmtPct(part, whole) { return whole ? (100 * part / whole).toFixed(1) + "%" : "-"; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function basename(path) { var i = path.lastIndexOf("/"); return i < 0 ? path : path.slice(i + 1); }
  function frameName(f) { return f[2] ? f[2] : basename(f[0]) + ":" + f[1]; }
  function frameWhere(f) { return f[1] ? f[0] + ":" + f[1] : f[0]; }

  var tooltip = $("mh-tooltip");
  function showTip(text, ev) {
    tooltip.textContent = text;
    tooltip.hidden = false;
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var w = tooltip.offsetWidth, h = tooltip.offsetHeight;
    if (x + w > window.innerWidth - 4) x = Math.max(4, ev.clientX - w - 14);
    if (y + h > window.innerHeight - 4) y = Math.max(4, ev.clientY - h - 14);
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }
  function hideTip() { tooltip.hidden = true; }

  /* ---------------------------------------------------------------- header */
  $("mh-title").textContent = D.title || "";
  (function summary() {
    var parts = [];
    if (D.flame) parts.push(fmtSize(D.flame.total_size) + " live in " + fmtCount(D.flame.total_count) + " blocks" +
                            (D.snapshot ? " (" + D.snapshot + ")" : ""));
    if (D.sampling) parts.push(D.sampling);
    if (D.timeline && D.timeline.points.length) {
      var peak = 0;
      D.timeline.points.forEach(function (p) { if (p[2] > peak) peak = p[2]; });
      parts.push("peak " + fmtSize(peak));
    }
    if (D.leaks && D.leaks.length) {
      var n = D.leaks.filter(function (r) { return r.leaked; }).length;
      parts.push(n ? n + " leak report(s) with leaks" : "no leak found");
    }
    $("mh-summary").textContent = parts.join(" \u00b7 ");
    $("mh-footer").textContent = "memhound " + D.version + " \u00b7 generated " + D.generated +
      " \u00b7 files: " + (D.files || []).join(", ");
  })();

  /* ---------------------------------------------------------------- flame graph */
  function FlameGraph(data) {
    var nodes = data.nodes, frames = data.frames;
    var n = nodes.length / 4, i;
    var parent = new Int32Array(n), frame = new Int32Array(n), size = new Float64Array(n), count = new Float64Array(n);
    var depth = new Int32Array(n), x = new Float64Array(n), nkids = new Int32Array(n);
    for (i = 0; i < n; i++) {
      parent[i] = nodes[4 * i]; frame[i] = nodes[4 * i + 1]; size[i] = nodes[4 * i + 2]; count[i] = nodes[4 * i + 3];
      if (i > 0) nkids[parent[i]]++;
    }
    // children lists in one flat array, biggest first
    var start = new Int32Array(n + 1), fill = new Int32Array(n), kids = new Int32Array(Math.max(0, n - 1));
    for (i = 0; i < n; i++) start[i + 1] = start[i] + nkids[i];
    for (i = 1; i < n; i++) { kids[start[parent[i]] + fill[parent[i]]++] = i; }
    var maxDepth = 0;
    for (i = 0; i < n; i++) {
      var list = Array.prototype.slice.call(kids, start[i], start[i + 1]);
      list.sort(function (a, b) { return size[b] - size[a] || a - b; });
      var off = x[i];
      for (var k = 0; k < list.length; k++) {
        var c = list[k];
        kids[start[i] + k] = c;
        x[c] = off; off += size[c];
        depth[c] = depth[i] + 1;            // parents precede children
        if (depth[c] > maxDepth) maxDepth = depth[c];
      }
    }
    this.n = n; this.parent = parent; this.frame = frame; this.size = size; this.count = count;
    this.depth = depth; this.x = x; this.maxDepth = maxDepth; this.frames = frames;
    this.total = n ? size[0] : 0;
    this.focus = 0;
    this.matched = null;
    this.rowH = 18;
  }
  FlameGraph.prototype.label = function (i) {
    return i === 0 ? "all (" + fmtSize(this.total) + ")" : frameName(this.frames[this.frame[i]]);
  };
  FlameGraph.prototype.isAncestorOrSelf = function (a, i) {
    while (i > a) i = this.parent[i];
    return i === a;
  };
  FlameGraph.prototype.colour = function (i) {
    if (i === 0) return "#c9ced6";
    var f = this.frames[this.frame[i]];
    var h = 0, s = f[0];
    for (var k = 0; k < s.length; k++) h = (h * 31 + s.charCodeAt(k)) >>> 0;
    var hue = 8 + (h % 42);                       // warm: red..yellow per file
    var g = 0, fn = f[2] || String(f[1]);         // lightness varies per function
    for (k = 0; k < fn.length; k++) g = (g * 33 + fn.charCodeAt(k)) >>> 0;
    var light = 56 + (g % 16);
    if (this.matched) {
      return this.matched[i] ? "hsl(292, 62%, 55%)" : "hsl(" + hue + ", 12%, 80%)";
    }
    return "hsl(" + hue + ", 78%, " + light + "%)";
  };
  FlameGraph.prototype.draw = function (canvas) {
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.parentNode.clientWidth || 800;
    var rows = this.maxDepth + 1, rowH = this.rowH;
    var height = rows * rowH + 2;
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    canvas.style.height = height + "px";
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
    ctx.textBaseline = "middle";
    var charW = ctx.measureText("m").width * 0.85 || 7;
    var f = this.focus, x0 = this.x[f], span = this.size[f] || 1, scale = width / span;
    var labels = [];
    this.boxes = [];
    for (var i = 0; i < this.n; i++) {
      var w, px;
      if (this.depth[i] < this.depth[f]) {
        if (!this.isAncestorOrSelf(i, f)) continue;
        px = 0; w = width;                        // ancestors of the zoomed frame: full width
      } else {
        if (this.x[i] + this.size[i] <= x0 || this.x[i] >= x0 + span) continue;
        if (this.depth[i] === this.depth[f] && i !== f) continue;
        px = (this.x[i] - x0) * scale; w = this.size[i] * scale;
        if (w < 0.4) continue;
      }
      var py = this.depth[i] * rowH;
      ctx.fillStyle = this.colour(i);
      ctx.fillRect(px + 0.5, py + 0.5, Math.max(w - 1, 0.6), rowH - 1);
      this.boxes.push([i, px, py, w]);
      if (w > 3 * charW) {
        var text = this.label(i), fit = Math.floor((w - 6) / charW);
        if (text.length > fit) text = text.slice(0, Math.max(fit - 1, 1)) + "\u2026";
        ctx.fillStyle = "#1d2330";
        ctx.fillText(text, px + 3, py + rowH / 2 + 0.5);
        if (labels.length < 500) labels.push(text);
      }
    }
    state.flameLabels = labels;
    canvas.setAttribute("data-labels", JSON.stringify(labels));
    canvas.setAttribute("data-focus", this.label(f));
  };
  FlameGraph.prototype.hit = function (px, py) {
    for (var k = 0; k < this.boxes.length; k++) {
      var b = this.boxes[k];
      if (py >= b[2] && py < b[2] + this.rowH && px >= b[1] && px < b[1] + b[3]) return b[0];
    }
    return -1;
  };
  FlameGraph.prototype.describe = function (i) {
    var lines = [this.label(i)];
    if (i > 0) lines.push(frameWhere(this.frames[this.frame[i]]));
    lines.push(fmtSize(this.size[i]) + " in " + fmtCount(this.count[i]) + " blocks, " +
               fmtPct(this.size[i], this.total) + " of all" +
               (this.focus ? ", " + fmtPct(this.size[i], this.size[this.focus]) + " of zoomed" : ""));
    return lines.join("\n");
  };
  FlameGraph.prototype.search = function (query) {
    if (!query) { this.matched = null; return null; }
    var re;
    try { re = new RegExp(query, "i"); } catch (e) { re = null; }
    var lower = query.toLowerCase();
    var matched = new Uint8Array(this.n), total = 0;
    for (var i = 1; i < this.n; i++) {
      var f = this.frames[this.frame[i]], text = (f[2] || "") + " " + f[0] + ":" + f[1];
      var ok = re ? re.test(text) : text.toLowerCase().indexOf(lower) >= 0;
      if (ok) {
        matched[i] = 1;
        // count bytes once: skip nodes below an already matched ancestor
        var p = this.parent[i], under = false;
        while (p > 0) { if (matched[p]) { under = true; break; } p = this.parent[p]; }
        if (!under) total += this.size[i];
      }
    }
    this.matched = matched;
    return total;
  };

  function setupFlame() {
    if (!D.flame || !D.flame.nodes.length) return;
    $("mh-flame-section").hidden = false;
    var fg = new FlameGraph(D.flame), canvas = $("mh-flame");
    state.flame = fg;
    var redraw = function () { fg.draw(canvas); };
    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect(), i = fg.hit(ev.clientX - r.left, ev.clientY - r.top);
      if (i < 0) { hideTip(); return; }
      var text = fg.describe(i);
      showTip(text, ev);
      $("mh-flame-details").textContent = text.replace(/\n/g, " \u2014 ");
    });
    canvas.addEventListener("mouseleave", hideTip);
    canvas.addEventListener("click", function (ev) {
      var r = canvas.getBoundingClientRect(), i = fg.hit(ev.clientX - r.left, ev.clientY - r.top);
      if (i >= 0) { fg.focus = i; redraw(); }
    });
    $("mh-reset").addEventListener("click", function () { fg.focus = 0; redraw(); });
    $("mh-search").addEventListener("input", function () {
      var q = this.value.trim(), total = fg.search(q);
      $("mh-match").textContent = q ? "matched " + fmtSize(total) + " (" + fmtPct(total, fg.total) + ")" : "";
      redraw();
    });
    window.addEventListener("resize", redraw);
    state.zoom = function (label) {
      for (var i = 0; i < fg.n; i++) if (fg.label(i) === label) { fg.focus = i; redraw(); return true; }
      return false;
    };
    state.search = function (q) { var s = $("mh-search"); s.value = q; s.dispatchEvent(new Event("input")); return $("mh-match").textContent; };
    if (D.flame.pruned) {
      $("mh-flame-details").textContent += " " + fmtCount(D.flame.pruned) +
        (D.flame.pruned === 1 ? " small call-tree node is" : " small call-tree nodes are") +
        " folded into their callers.";
    }
    redraw();
    state.rendered.flame = true;
  }

  /* ---------------------------------------------------------------- timeline */
  function niceStep(range, ticks, binary) {
    var raw = range / ticks, base = binary && raw >= 1024 ? Math.pow(1024, Math.floor(Math.log(raw) / Math.log(1024))) : 1;
    var v = raw / base, mag = Math.pow(10, Math.floor(Math.log10(v)));
    var r = v / mag, step = r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10;
    return step * mag * base;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setupTimeline() {
    var T = D.timeline;
    if (!T || !T.points || T.points.length < 2) return;
    $("mh-timeline-section").hidden = false;
    var W = 1000, H = 280, L = 74, R = 16, TOP = 28, B = 36;
    var pts = T.points, t0 = pts[0][0], t1 = pts[pts.length - 1][0], ymax = 1;
    pts.forEach(function (p) { ymax = Math.max(ymax, p[1], p[2]); });
    (T.marks || []).forEach(function (m) { ymax = Math.max(ymax, m[1]); });
    if (t1 <= t0) t1 = t0 + 1;
    var ystep = niceStep(ymax, 5, true); ymax = Math.ceil(ymax / ystep) * ystep;
    var X = function (t) { return L + (t - t0) / (t1 - t0) * (W - L - R); };
    var Y = function (v) { return TOP + (1 - v / ymax) * (H - TOP - B); };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "memory over time" });
    var grid = svg("g", { "class": "grid" }), axis = svg("g", { "class": "axis" });
    var labels = [];
    for (var v = 0; v <= ymax + 1e-9; v += ystep) {
      grid.appendChild(svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      var lab = fmtSize(v);
      axis.appendChild(svg("text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, lab));
      labels.push(lab);
    }
    var unit = T.unit === "s" ? " s" : "";
    var xstep = niceStep(t1 - t0, 8, false);
    for (var t = Math.ceil(t0 / xstep) * xstep; t <= t1 + 1e-9; t += xstep) {
      var xl = (T.unit === "s" ? +t.toFixed(3) : Math.round(t)) + unit;
      axis.appendChild(svg("line", { x1: X(t), x2: X(t), y1: H - B, y2: H - B + 4 }));
      axis.appendChild(svg("text", { x: X(t), y: H - B + 16, "text-anchor": "middle" }, xl));
      labels.push(xl);
    }
    var xtitle = T.unit === "s" ? "time (s)" : "snapshot";
    axis.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, xtitle));
    labels.push(xtitle);
    root.appendChild(grid); root.appendChild(axis);
    var cur = pts.map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); });
    var peak = pts.map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[2]).toFixed(1); });
    root.appendChild(svg("polygon", { "class": "currentfill",
      points: X(t0) + "," + Y(0) + " " + cur.join(" ") + " " + X(pts[pts.length - 1][0]) + "," + Y(0) }));
    root.appendChild(svg("polyline", { "class": "peak", points: peak.join(" ") }));
    root.appendChild(svg("polyline", { "class": "current", points: cur.join(" ") }));
    (T.marks || []).forEach(function (m) {
      var c = svg("circle", { "class": "mark", cx: X(m[0]), cy: Y(m[1]), r: 3.5 });
      c.appendChild(svg("title", {}, m[2] + ": " + fmtSize(m[1])));
      root.appendChild(c);
    });
    var legend = svg("g", { "class": "legend" });
    legend.appendChild(svg("line", { x1: L + 8, x2: L + 30, y1: 14, y2: 14, "class": "current" }));
    legend.appendChild(svg("text", { x: L + 36, y: 18 }, "current traced memory"));
    legend.appendChild(svg("line", { x1: L + 210, x2: L + 232, y1: 14, y2: 14, "class": "peak" }));
    legend.appendChild(svg("text", { x: L + 238, y: 18 }, "peak"));
    labels.push("current traced memory", "peak");
    root.appendChild(legend);
    var cursor = svg("line", { "class": "cursor", y1: TOP, y2: H - B, x1: -10, x2: -10 });
    root.appendChild(cursor);
    root.addEventListener("mousemove", function (ev) {
      var r = root.getBoundingClientRect(), sx = (ev.clientX - r.left) * W / r.width;
      var t = t0 + (sx - L) / (W - L - R) * (t1 - t0), lo = 0, hi = pts.length - 1;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (pts[mid][0] < t) lo = mid + 1; else hi = mid; }
      var p = pts[lo];
      cursor.setAttribute("x1", X(p[0])); cursor.setAttribute("x2", X(p[0]));
      showTip((T.unit === "s" ? p[0].toFixed(2) + " s" : "snapshot " + p[0]) + "\ncurrent " + fmtSize(p[1]) +
              "\npeak " + fmtSize(p[2]), ev);
    });
    root.addEventListener("mouseleave", function () { hideTip(); cursor.setAttribute("x1", -10); cursor.setAttribute("x2", -10); });
    $("mh-timeline").appendChild(root);
    state.chartLabels = labels;
    state.rendered.timeline = true;
  }

  /* ---------------------------------------------------------------- sites table */
  function setupSites() {
    if (!D.sites || !D.sites.length) return;
    $("mh-sites-section").hidden = false;
    var total = D.flame ? D.flame.total_size : 0, maxSize = 0;
    var rows = D.sites.map(function (s) {
      if (s[3] > maxSize) maxSize = s[3];
      return { file: s[0], line: s[1], func: s[2], size: s[3], count: s[4], share: total ? s[3] / total : 0,
               avg: s[4] ? s[3] / s[4] : 0, location: (s[2] ? s[2] + " " : "") + s[0] + ":" + s[1] };
    });
    var tbody = document.querySelector("#mh-sites tbody"), sortKey = "size", desc = true, filter = "";
    function render() {
      var shown = rows.filter(function (r) { return !filter || r.location.toLowerCase().indexOf(filter) >= 0; });
      shown.sort(function (a, b) {
        var va = a[sortKey], vb = b[sortKey], c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
        return desc ? -c : c;
      });
      var frag = document.createDocumentFragment();
      shown.forEach(function (r) {
        var tr = el("tr"), td = el("td", "loc");
        if (r.func) { td.appendChild(el("span", "fn", r.func)); td.appendChild(document.createTextNode(" ")); }
        td.appendChild(document.createTextNode(r.line ? r.file + ":" + r.line : r.file));
        tr.appendChild(td);
        var sz = el("td", "num", fmtSize(r.size)), bar = el("span", "bar");
        bar.style.width = Math.max(1, Math.round(60 * r.size / (maxSize || 1))) + "px";
        sz.appendChild(bar);
        tr.appendChild(sz);
        tr.appendChild(el("td", "num", total ? (100 * r.share).toFixed(1) + "%" : "-"));
        tr.appendChild(el("td", "num", fmtCount(r.count)));
        tr.appendChild(el("td", "num", fmtSize(r.avg)));
        frag.appendChild(tr);
      });
      tbody.textContent = "";
      tbody.appendChild(frag);
      $("mh-site-count").textContent = shown.length + " of " + rows.length + " sites";
      document.querySelectorAll("#mh-sites th").forEach(function (th) {
        th.className = (th.getAttribute("data-type") === "num" ? "num " : "") +
          (th.getAttribute("data-key") === sortKey ? (desc ? "sorted-desc" : "sorted-asc") : "");
      });
    }
    document.querySelectorAll("#mh-sites th").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        if (key === sortKey) desc = !desc; else { sortKey = key; desc = th.getAttribute("data-type") === "num"; }
        render();
      });
    });
    $("mh-site-filter").addEventListener("input", function () { filter = this.value.trim().toLowerCase(); render(); });
    state.sortSites = function (key) { document.querySelector('#mh-sites th[data-key="' + key + '"]').click(); };
    render();
    state.rendered.sites = true;
  }

  /* ---------------------------------------------------------------- leaks */
  function setupLeaks() {
    if (!D.leaks || !D.leaks.length) return;
    $("mh-leaks-section").hidden = false;
    var box = $("mh-leaks");
    D.leaks.forEach(function (rep) {
      var div = el("div", "leakfile");
      var runs = (rep.runs !== undefined ? rep.runs + " measured runs" : "") +
                 (rep.warmup !== undefined ? " after " + rep.warmup + " warm-up runs" : "");
      div.appendChild(el("div", "verdict " + (rep.leaked ? "leak" : "ok"),
        (rep.leaked ? "Leak found" : "No leak found") + (runs ? " \u2014 " + runs : "") + (rep.name ? " (" + rep.name + ")" : "")));
      if (rep.deltas) {
        var d = [];
        ["blocks", "objects", "bytes"].forEach(function (k) {
          if (rep.deltas[k]) d.push(k + " per run: " + rep.deltas[k].join(", "));
        });
        if (d.length) div.appendChild(el("div", "muted", d.join(" \u00b7 ")));
      }
      (rep.groups || []).forEach(function (g) {
        var gd = el("div", "group"), h = el("h3", null, g.type || "?");
        if (g.cause) h.appendChild(el("span", "cause", g.cause));
        gd.appendChild(h);
        var facts = [];
        if (g.count !== undefined) facts.push(fmtCount(g.count) + " objects");
        if (g.count_per_run !== undefined) facts.push(g.count_per_run + " per run");
        if (g.bytes !== undefined) facts.push(fmtSize(g.bytes));
        if (g.retained_bytes !== undefined && g.retained_bytes !== g.bytes)
          facts.push("keeps " + fmtSize(g.retained_bytes));
        gd.appendChild(el("div", "muted", facts.join(" \u00b7 ")));
        if (g.contents && g.contents.length > 1) {
          gd.appendChild(el("div", "muted", "keeps: " + g.contents.slice(0, 8).map(function (c) {
            return c.type + " \u00d7" + fmtCount(c.count) + " (" + fmtSize(c.bytes) + ")";
          }).join(", ") + (g.contents.length > 8 ? ", \u2026" : "")));
        }
        var chain = el("div", "chain");
        (g.path || []).forEach(function (step) {
          var nd = el("span", "node");
          nd.appendChild(el("span", "kind", step.kind || ""));
          nd.appendChild(el("span", "label", step.label || ""));
          chain.appendChild(nd);
          chain.appendChild(el("span", "arrow", "\u2192"));
        });
        var tgt = el("span", "node target");
        tgt.appendChild(el("span", "kind", "leaked"));
        tgt.appendChild(el("span", "label", g.type || "?"));
        chain.appendChild(tgt);
        gd.appendChild(chain);
        if (g.path_text) gd.appendChild(el("div", "muted", g.path_text));
        if (g.hint) gd.appendChild(el("div", "hint", "Fix: " + g.hint));
        if (g.created_at && g.created_at.length) {
          gd.appendChild(el("div", "muted", "created at (most recent call first):"));
          var ol = el("ol", "created");
          g.created_at.forEach(function (f) {
            ol.appendChild(el("li", null, f.filename + ":" + f.lineno + (f["function"] ? " in " + f["function"] : "")));
          });
          gd.appendChild(ol);
        }
        div.appendChild(gd);
      });
      box.appendChild(div);
    });
    state.rendered.leaks = true;
  }

  setupFlame();
  setupTimeline();
  setupSites();
  setupLeaks();
  document.documentElement.setAttribute("data-rendered", Object.keys(state.rendered).join(" "));
  document.documentElement.setAttribute("data-chart-labels", JSON.stringify(state.chartLabels));
})();
