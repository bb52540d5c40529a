/* pytest-cnnshape shape-flow picture: draws each model of the page from the JSON in
 * #cnnshape-data. Plain JavaScript, no libraries, nothing fetched: it works from file://.
 *
 * A node is a layer call (or a folded container, a junction of several tensors such as
 * a residual add or a skip cat, a model input, the output). Nodes are ranked along the
 * data flow (longest path), the longest path from the input to the output runs on lane 0
 * and branches take the lanes below; a skip between two nodes of lane 0 is drawn as an
 * arc above them. Block height grows with log2 of the map's side, block depth with log2
 * of its channels. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var GAP = 38, LANE_GAP = 26, OBL = 7, LABEL_LINE = 13, ARC_STEP = 11;
  var CATEGORIES = [
    ["transposed", /ConvTranspose|Upsample|PixelShuffle/],
    ["conv", /Conv/],
    ["norm", /Norm/],
    ["pool", /Pool/],
    ["act", /ReLU|GELU|SiLU|Tanh|Sigmoid|ELU|Mish|Hardswish|Hardsigmoid|Softmax|Softplus|PReLU|Swish|Threshold/],
    ["linear", /Linear|Bilinear/],
    ["dropout", /Dropout/],
    ["reshape", /Flatten|Unflatten|Identity/]
  ];
  var LEGEND = [
    ["conv", "convolution"], ["transposed", "upsampling"], ["norm", "normalization"],
    ["act", "activation"], ["pool", "pooling"], ["linear", "linear"], ["dropout", "dropout"],
    ["reshape", "flatten / identity"], ["other", "other"], ["container", "folded block (click)"]
  ];

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var key in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) node.setAttribute(key, attrs[key]);
    }
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(name, cls, parent, text) {
    var node = document.createElement(name);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function isShape(v) {
    if (!Array.isArray(v)) return false;
    for (var i = 0; i < v.length; i++) if (typeof v[i] !== "number") return false;
    return true;
  }
  function firstShape(tree) {
    if (tree === null || tree === undefined) return null;
    if (isShape(tree)) return tree;
    var items = Array.isArray(tree) ? tree : Object.keys(tree).map(function (k) { return tree[k]; });
    for (var i = 0; i < items.length; i++) {
      var found = firstShape(items[i]);
      if (found) return found;
    }
    return null;
  }
  function shapeText(tree) {
    if (tree === null || tree === undefined) return "-";
    if (isShape(tree)) return tree.length ? tree.join("\u00d7") : "scalar";
    if (Array.isArray(tree)) return "(" + tree.map(shapeText).join(", ") + ")";
    return "{" + Object.keys(tree).map(function (k) { return k + ": " + shapeText(tree[k]); }).join(", ") + "}";
  }
  function formulaText(tree) {
    if (tree === null || tree === undefined) return "-";
    if (typeof tree === "string") return tree;
    if (Array.isArray(tree)) return "(" + tree.map(formulaText).join(", ") + ")";
    return "{" + Object.keys(tree).map(function (k) { return k + ": " + formulaText(tree[k]); }).join(", ") + "}";
  }
  function count(n) { return typeof n === "number" ? n.toLocaleString("en-US") : "-"; }
  function category(type) {
    for (var i = 0; i < CATEGORIES.length; i++) if (CATEGORIES[i][1].test(type)) return CATEGORIES[i][0];
    return "other";
  }
  function log2(x) { return Math.log(Math.max(1, x)) / Math.LN2; }
  function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "\u2026" : text; }
  /* Front-face width (channels) and height (spatial side) of a block for a shape. */
  function blockSize(shape) {
    if (!shape || shape.length < 2) return { w: 16, h: 16 };
    if (shape.length === 2) return { w: 9, h: Math.min(150, 16 + 11 * log2(shape[1])) };
    var spatial = 1;
    for (var i = 2; i < shape.length; i++) spatial *= Math.max(1, shape[i]);
    var side = Math.pow(spatial, 1 / (shape.length - 2));
    return { w: Math.min(84, 8 + 7 * log2(shape[1])), h: Math.min(176, 16 + 16 * log2(side)) };
  }
  function textWidth(text) { return text.length * 6.3; }

  function Viewer(section, model) {
    this.section = section;
    this.m = model;
    this.calls = model.calls;
    this.kids = this.calls.map(function () { return []; });
    var self = this;
    this.calls.forEach(function (c, i) { if (c.p >= 0) self.kids[c.p].push(i); });
    this.initial = {};
    this.calls.forEach(function (c, i) { if (!c.leaf && c.d < model.depth) self.initial[i] = true; });
    if (model.fail !== undefined) {
      for (var a = model.fail; a >= 0; a = this.calls[a].p) if (!this.calls[a].leaf) this.initial[a] = true;
    }
    this.expanded = Object.assign({}, this.initial);
    this.marks = model.marks || {};
    this.removed = model.removed || {};
    this.old = model.old || {};
    this.query = "";
    this.view = { s: 1, tx: 12, ty: 0 };
    this.build();
  }

  Viewer.prototype.isOpen = function (i) { return !this.calls[i].leaf && !!this.expanded[i]; };
  /* The call that stands for call i at the current folding (-1: i is an open container). */
  Viewer.prototype.rep = function (i) {
    var chain = [];
    for (var a = i; a >= 0; a = this.calls[a].p) chain.push(a);
    for (var k = chain.length - 1; k >= 0; k--) if (!this.isOpen(chain[k])) return chain[k];
    return -1;
  };
  Viewer.prototype.within = function (i, ancestor) {
    for (var a = i; a >= 0; a = this.calls[a].p) if (a === ancestor) return true;
    return false;
  };

  /* ---- the graph at the current folding ------------------------------------------ */
  Viewer.prototype.graph = function () {
    var self = this, m = this.m, calls = this.calls;
    var nodes = [], byId = {};
    function add(node) {
      node.preds = node.preds || [];
      node.order = nodes.length;
      nodes.push(node);
      byId[node.id] = node;
      return node;
    }
    function withOps(list, ops) {
      if (!ops || !ops.length) return list;
      return list.map(function (e) { return { id: e.id, ops: (e.ops || []).concat(ops) }; });
    }
    function endpoints(ref, consumerShape) {
      if (!ref) return [];
      var out;
      if (ref.i !== undefined) {
        out = byId["i" + ref.i] ? [{ id: "i" + ref.i, ops: [] }] : [];
      } else if (ref.c !== undefined) {
        var r = self.rep(ref.c);
        if (r >= 0) {
          out = byId["c" + r] ? [{ id: "c" + r, ops: [] }] : [];
        } else if (calls[ref.c].ret) {
          out = endpoints(calls[ref.c].ret);
        } else {
          out = [];
          for (var q = calls.length - 1; q > ref.c; q--) {
            if (self.within(q, ref.c) && byId["c" + q]) { out = [{ id: "c" + q, ops: [] }]; break; }
          }
        }
      } else {
        var id = "j" + ref.j;
        if (byId[id]) {
          out = [{ id: id, ops: [] }];
        } else {
          var junction = m.junctions[ref.j], parents = [], seen = {};
          junction.src.forEach(function (p) {
            endpoints(p).forEach(function (e) {
              var key = e.id + "|" + (e.ops || []).join(",");
              if (!seen[key]) { seen[key] = true; parents.push(e); }
            });
          });
          var distinct = {};
          parents.forEach(function (e) { distinct[e.id] = true; });
          if (Object.keys(distinct).length <= 1) {
            out = withOps(parents.slice(0, 1), [junction.op]);
          } else {
            add({ id: id, kind: "junction", op: junction.op, preds: parents, shape: consumerShape });
            out = [{ id: id, ops: [] }];
          }
        }
      }
      return withOps(out, ref.ops);
    }
    m.inputs.forEach(function (shape, k) { add({ id: "i" + k, kind: "input", shape: firstShape(shape), tree: shape }); });
    var previous = nodes.length ? nodes[nodes.length - 1].id : null;
    calls.forEach(function (c, i) {
      if (self.rep(i) !== i) return;
      var preds = [];
      if (m.flow) {
        (c.src || []).forEach(function (ref, k) {
          preds = preds.concat(endpoints(ref, firstShape(c["in"][k])));
        });
      } else if (previous) {
        preds = [{ id: previous, ops: [] }];
      }
      var node = add({ id: "c" + i, kind: "call", index: i, preds: [] });
      var seen = {};
      node.preds = preds.filter(function (e) {
        var key = e.id + "|" + (e.ops || []).join(",");
        if (e.id === node.id || seen[key]) return false;
        seen[key] = true;
        return true;
      });
      previous = node.id;
    });
    if (m.complete) {
      var outPreds;
      if (!calls.length) outPreds = previous ? [{ id: previous, ops: [] }] : [];
      else if (!m.flow) outPreds = [{ id: previous, ops: [] }];
      else outPreds = endpoints({ c: 0 });
      add({ id: "out", kind: "output", preds: outPreds, tree: calls.length ? calls[0].out : null });
    } else if (m.fail !== undefined && this.rep(m.fail) === -1) {
      var last = null;
      for (var q = calls.length - 1; q >= m.fail; q--) {
        if (this.rep(q) === q && this.within(q, m.fail)) { last = "c" + q; break; }
      }
      var where = calls[m.fail];
      add({ id: "fail", kind: "fail", label: (where.n || "(root)") + " forward()", preds: last ? [{ id: last, ops: [] }] : (previous ? [{ id: previous, ops: [] }] : []) });
    }
    nodes.forEach(function (n) { n.preds = n.preds.filter(function (e) { return byId[e.id] && byId[e.id].order < n.order; }); });
    return { nodes: nodes, byId: byId };
  };

  /* ---- layout --------------------------------------------------------------------- */
  Viewer.prototype.measure = function (node) {
    var calls = this.calls, lines, size;
    if (node.kind === "call") {
      var c = calls[node.index];
      var shape = firstShape(c.out) || firstShape(c["in"]);
      size = blockSize(shape);
      var name = (c.n || "(root)") + (c.c ? " (" + (c.c + 1) + ")" : "");
      var mark = this.marks[String(node.index)];
      if (mark) name = (mark === "added" ? "+ " : "~ ") + name;
      lines = [clip(name, 24), clip(c.t, 24), clip(c.ok === false ? "failed here" : shapeText(c.out), 26)];
      if (c.f !== undefined) lines.push(clip(formulaText(c.f), 30));
      if (!c.leaf) lines[1] = clip("\u25b8 " + c.t, 24);
    } else if (node.kind === "junction") {
      size = { w: 20, h: 20 };
      lines = [clip(node.op, 14)];
    } else if (node.kind === "input") {
      size = blockSize(node.shape);
      lines = ["input", clip(shapeText(node.tree), 26)];
    } else if (node.kind === "output") {
      size = { w: 14, h: 14 };
      lines = ["output", clip(shapeText(node.tree), 26)];
    } else {
      size = { w: 22, h: 22 };
      lines = ["\u2717 failed in", clip(node.label, 24)];
    }
    var o = node.kind === "call" || node.kind === "input" ? Math.max(OBL, Math.round(size.h * 0.1)) : 0;
    var labelW = 0;
    lines.forEach(function (t) { labelW = Math.max(labelW, textWidth(t)); });
    node.w = size.w; node.h = size.h; node.o = o; node.lines = lines;
    node.width = Math.max(size.w + o, labelW);
    node.blockH = size.h + o;
    node.labelH = lines.length * LABEL_LINE + 6;
  };

  Viewer.prototype.layout = function (g) {
    var nodes = g.nodes, byId = g.byId, self = this;
    nodes.forEach(function (n) { n.succ = []; self.measure(n); });
    nodes.forEach(function (n) { n.preds.forEach(function (e) { byId[e.id].succ.push(n); }); });
    var lastRank = -1;
    nodes.forEach(function (n) {
      if (n.kind === "input") n.rank = 0;
      else if (n.preds.length) n.rank = Math.max.apply(null, n.preds.map(function (e) { return byId[e.id].rank; })) + 1;
      else n.rank = lastRank + 1;
      lastRank = Math.max(lastRank, n.rank);
    });
    /* lane 0: the longest path back from the output (or the failure, or the last node) */
    var end = byId.out || byId.fail || (this.m.fail !== undefined && byId["c" + this.rep(this.m.fail)]) || nodes[nodes.length - 1];
    for (var n = end; n; ) {
      n.lane = 0;
      var best = null;
      n.preds.forEach(function (e) { var p = byId[e.id]; if (p.lane === undefined && (!best || p.rank > best.rank)) best = p; });
      n = best;
    }
    var occupied = [[]];
    function free(lane, a, b) {
      var list = occupied[lane] || [];
      for (var i = 0; i < list.length; i++) if (list[i][0] <= b && a <= list[i][1]) return false;
      return true;
    }
    nodes.forEach(function (n) {
      if (n.lane !== undefined) return;
      var endRank = n.rank;
      n.succ.forEach(function (s) { endRank = Math.max(endRank, s.rank - 1); });
      var lane = -1;
      for (var k = 0; k < n.preds.length && lane < 0; k++) {
        var p = byId[n.preds[k].id];
        if (p.lane > 0 && free(p.lane, n.rank, endRank)) lane = p.lane;
      }
      for (var l = 1; lane < 0; l++) if (free(l, n.rank, endRank)) lane = l;
      while (occupied.length <= lane) occupied.push([]);
      occupied[lane].push([n.rank, endRank]);
      n.lane = lane;
    });
    var ranks = 0, lanes = 1;
    nodes.forEach(function (n) { ranks = Math.max(ranks, n.rank + 1); lanes = Math.max(lanes, n.lane + 1); });
    var colW = [], laneBlock = [], laneLabel = [];
    for (var r = 0; r < ranks; r++) colW.push(20);
    for (var l2 = 0; l2 < lanes; l2++) { laneBlock.push(20); laneLabel.push(0); }
    nodes.forEach(function (n) {
      colW[n.rank] = Math.max(colW[n.rank], n.width);
      laneBlock[n.lane] = Math.max(laneBlock[n.lane], n.blockH);
      laneLabel[n.lane] = Math.max(laneLabel[n.lane], n.labelH);
    });
    var colX = [], x = 16;
    for (var r2 = 0; r2 < ranks; r2++) { colX.push(x); x += colW[r2] + GAP; }
    /* skip arcs between lane-0 nodes that are not neighbours: levels so that none cross */
    var arcs = [];
    nodes.forEach(function (n) {
      n.preds.forEach(function (e) {
        var p = byId[e.id];
        if (p.lane === 0 && n.lane === 0 && n.rank - p.rank > 1) arcs.push({ from: p, to: n, ops: e.ops });
      });
    });
    arcs.sort(function (a, b) { return (a.to.rank - a.from.rank) - (b.to.rank - b.from.rank) || a.from.rank - b.from.rank; });
    var levels = [];
    arcs.forEach(function (arc) {
      for (var lv = 0; ; lv++) {
        levels[lv] = levels[lv] || [];
        var clash = levels[lv].some(function (o) { return o.from.rank <= arc.to.rank && arc.from.rank <= o.to.rank; });
        if (!clash) { levels[lv].push(arc); arc.level = lv; break; }
      }
    });
    var arcSpace = levels.length ? 22 + levels.length * ARC_STEP : 8;
    var laneY = [], y = 12 + arcSpace;
    for (var l3 = 0; l3 < lanes; l3++) {
      laneY.push(y + laneBlock[l3] / 2);
      y += laneBlock[l3] + laneLabel[l3] + LANE_GAP;
    }
    nodes.forEach(function (n) {
      var cx = colX[n.rank] + colW[n.rank] / 2;
      n.cx = cx;
      n.cy = laneY[n.lane];
      n.x0 = cx - (n.w + n.o) / 2;
      n.y0 = n.cy - n.h / 2 + n.o / 2;
    });
    var top0 = laneY[0] - laneBlock[0] / 2;
    arcs.forEach(function (arc) { arc.y = top0 - 14 - arc.level * ARC_STEP; });
    this.frames = this.frameRows(nodes, y);
    var height = y + this.frames.height + 8;
    return { nodes: nodes, byId: byId, arcs: arcs, width: x + 8, height: height, colX: colX, colW: colW };
  };

  /* Open containers, as brackets under the picture (click or Enter folds them). */
  Viewer.prototype.frameRows = function (nodes, top) {
    var self = this, spans = {};
    nodes.forEach(function (n) {
      if (n.kind !== "call") return;
      for (var a = self.calls[n.index].p; a >= 0; a = self.calls[a].p) {
        var s = spans[a] || (spans[a] = { index: a, x0: Infinity, x1: -Infinity });
        s.x0 = Math.min(s.x0, n.cx - n.width / 2);
        s.x1 = Math.max(s.x1, n.cx + n.width / 2);
      }
    });
    var list = Object.keys(spans).map(function (k) { return spans[k]; });
    var depthMin = Infinity, depthMax = -Infinity;
    list.forEach(function (s) { var d = self.calls[s.index].d; depthMin = Math.min(depthMin, d); depthMax = Math.max(depthMax, d); });
    list.forEach(function (s) { s.y = top + (depthMax - self.calls[s.index].d) * 22; });
    return { list: list, height: list.length ? (depthMax - depthMin + 1) * 22 + 4 : 0 };
  };

  /* ---- drawing -------------------------------------------------------------------- */
  Viewer.prototype.build = function () {
    var self = this, section = this.section;
    this.toolbar = section.querySelector(".toolbar");
    this.stage = section.querySelector(".stage");
    this.svg = section.querySelector("svg.flow");
    this.facts = section.querySelector(".facts");
    this.status = section.querySelector(".search-status");
    var legend = section.querySelector(".legend");
    if (legend && !legend.childNodes.length) {
      LEGEND.forEach(function (item) {
        var span = html("span", "key", legend);
        html("span", "swatch cat-" + item[0], span);
        span.appendChild(document.createTextNode(item[1]));
      });
    }
    this.toolbar.addEventListener("click", function (ev) {
      var action = ev.target && ev.target.getAttribute ? ev.target.getAttribute("data-action") : null;
      if (!action) return;
      if (action === "zoom-in") self.zoom(1.25);
      else if (action === "zoom-out") self.zoom(0.8);
      else if (action === "fit") self.fit();
      else if (action === "expand") {
        self.calls.forEach(function (c, i) { if (!c.leaf) self.expanded[i] = true; });
        self.render();
        self.view.tx = 12;
        self.apply();
      }
      else if (action === "fold") { self.expanded = Object.assign({}, self.initial); self.render(); self.start(); }
    });
    var search = section.querySelector("input.search");
    if (search) {
      search.addEventListener("input", function () { self.query = search.value.trim().toLowerCase(); self.hit = -1; self.highlight(); });
      search.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); self.nextMatch(ev.shiftKey ? -1 : 1); } });
    }
    this.installPanZoom();
    this.render();
    this.start();
  };

  Viewer.prototype.render = function () {
    var svg = this.svg, self = this;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: this.section.id + "-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrowhead" }, marker);
    this.viewport = el("g", { "class": "viewport" }, svg);
    var lay = this.current = this.layout(this.graph());
    this.size = { w: lay.width, h: lay.height };
    var edges = el("g", { "class": "edges" }, this.viewport);
    var arcKey = {};
    lay.arcs.forEach(function (a) { arcKey[a.from.id + ">" + a.to.id] = a; });
    lay.nodes.forEach(function (n) {
      n.preds.forEach(function (e) { self.drawEdge(edges, lay.byId[e.id], n, e.ops, arcKey[e.id + ">" + n.id]); });
    });
    var frames = el("g", { "class": "frames" }, this.viewport);
    this.frames.list.forEach(function (f) { self.drawFrame(frames, f); });
    var layer = el("g", { "class": "nodes" }, this.viewport);
    lay.nodes.forEach(function (n) { self.drawNode(layer, n); });
    svg.setAttribute("aria-label", this.m.title + ": " + lay.nodes.filter(function (n) { return n.kind === "call"; }).length + " layer calls shown, in the order the data flows; the layer table below is the same as text");
    this.highlight();
    if (this.started) this.growStage(this.view.s);
    this.apply();
  };
  /* The stage grows (never shrinks while one looks at it) to show the picture's height. */
  Viewer.prototype.growStage = function (s) {
    var want = Math.max(200, Math.min(640, this.size.h * s + 16));
    if (want > this.stage.clientHeight) this.stage.style.height = want + "px";
    return want;
  };

  Viewer.prototype.drawEdge = function (parent, from, to, ops, arc) {
    var d, lx, ly;
    var sx = from.x0 + from.w, sy = from.cy, tx = to.x0, ty = to.cy;
    if (arc) {
      var ax = from.x0 + from.w / 2 + from.o / 2, bx = to.x0 + to.w / 2 + to.o / 2, r = 8;
      var sTop = from.y0 - from.o, tTop = to.y0 - to.o;
      d = "M" + ax + "," + sTop + " V" + (arc.y + r) + " Q" + ax + "," + arc.y + " " + (ax + r) + "," + arc.y +
        " H" + (bx - r) + " Q" + bx + "," + arc.y + " " + bx + "," + (arc.y + r) + " V" + (tTop - 2);
      lx = (ax + bx) / 2; ly = arc.y - 3;
    } else if (from.lane === to.lane || to.rank - from.rank <= 1) {
      var mid = (sx + tx) / 2;
      d = from.lane === to.lane ? "M" + sx + "," + sy + " H" + (tx - 2)
        : "M" + sx + "," + sy + " C" + mid + "," + sy + " " + mid + "," + ty + " " + (tx - 2) + "," + ty;
      lx = mid; ly = Math.min(sy, ty) - 4;
    } else if (from.lane > to.lane) {
      var turn = tx - GAP;
      d = "M" + sx + "," + sy + " H" + turn + " C" + (turn + GAP / 2) + "," + sy + " " + (turn + GAP / 2) + "," + ty + " " + (tx - 2) + "," + ty;
      lx = (sx + turn) / 2; ly = sy - 4;
    } else {
      var turn2 = sx + GAP;
      d = "M" + sx + "," + sy + " C" + (sx + GAP / 2) + "," + sy + " " + (sx + GAP / 2) + "," + ty + " " + turn2 + "," + ty + " H" + (tx - 2);
      lx = (turn2 + tx) / 2; ly = ty - 4;
    }
    var g = el("g", { "class": "edge" + (to.kind === "fail" ? " to-failure" : "") }, parent);
    el("path", { d: d, "marker-end": "url(#" + this.section.id + "-arrow)" }, g);
    if (ops && ops.length) {
      var text = ops.slice(0, 2).join(" \u00b7 ") + (ops.length > 2 ? " +" + (ops.length - 2) : "");
      var t = el("text", { x: lx, y: ly, "class": "op-label", "text-anchor": "middle" }, g);
      t.textContent = text;
    }
  };

  Viewer.prototype.drawFrame = function (parent, f) {
    var self = this, c = this.calls[f.index];
    var g = el("g", { "class": "frame", tabindex: "0", role: "button", "aria-expanded": "true", "data-call": String(f.index),
      "aria-label": (c.n || "(root)") + " " + c.t + ", open: press Enter to fold" }, parent);
    el("rect", { x: f.x0, y: f.y - 8, width: Math.max(8, f.x1 - f.x0), height: 24, "class": "hit" }, g);
    el("path", { d: "M" + f.x0 + "," + (f.y - 6) + " V" + f.y + " H" + f.x1 + " V" + (f.y - 6) }, g);
    var t = el("text", { x: f.x0 + 4, y: f.y + 13 }, g);
    t.textContent = "\u25be " + clip((c.n || "(root)") + (c.c ? " (" + (c.c + 1) + ")" : "") + "  " + c.t, Math.max(6, Math.floor((f.x1 - f.x0) / 6.3)));
    g.addEventListener("click", function () { if (!self.dragged) self.toggle(f.index); });
    g.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); self.toggle(f.index); } });
    g.addEventListener("focus", function () { self.show({ kind: "call", index: f.index }); });
  };

  Viewer.prototype.drawNode = function (parent, n) {
    var self = this, cls = "node " + n.kind, call = n.kind === "call" ? this.calls[n.index] : null;
    var attrs = { tabindex: "0", "data-id": n.id };
    if (call) {
      var key = String(n.index);
      cls += " cat-" + (call.leaf ? category(call.t) : "container");
      if (!call.leaf) { cls += " folded"; attrs.role = "button"; attrs["aria-expanded"] = "false"; } else attrs.role = "img";
      if (call.ok === false) cls += this.m.fail === n.index ? " failed" : " failed-inside";
      if (this.marks[key]) cls += " " + this.marks[key];
      else if (!call.leaf && this.changedInside(n.index)) cls += " changed-inside";
      attrs["data-call"] = key;
      attrs["aria-label"] = this.describe(n);
    } else {
      attrs.role = "img";
      attrs["aria-label"] = n.lines.join(" ");
    }
    attrs["class"] = cls;
    var g = el("g", attrs, parent);
    var x0 = n.x0, y0 = n.y0, w = n.w, h = n.h, o = n.o;
    if (n.kind === "junction" || n.kind === "output" || n.kind === "fail") {
      el("circle", { cx: n.cx, cy: n.cy, r: w / 2, "class": "face" }, g);
      var sym = el("text", { x: n.cx, y: n.cy + 4, "text-anchor": "middle", "class": "symbol" }, g);
      sym.textContent = n.kind === "fail" ? "\u2717" : n.kind === "output" ? "" : ({ add: "+", sub: "\u2212", mul: "\u00d7", cat: "\u2225", stack: "\u2225", matmul: "@", truediv: "\u00f7" }[n.op] || "\u2022");
    } else {
      el("path", { d: "M" + x0 + "," + y0 + " l" + o + "," + (-o) + " h" + w + " l" + (-o) + "," + o + " z", "class": "top" }, g);
      el("path", { d: "M" + (x0 + w) + "," + y0 + " l" + o + "," + (-o) + " v" + h + " l" + (-o) + "," + o + " z", "class": "side" }, g);
      el("rect", { x: x0, y: y0, width: w, height: h, "class": "face" }, g);
      if (call && !call.leaf) {
        var plus = el("text", { x: x0 + w / 2, y: y0 + h / 2 + 4, "text-anchor": "middle", "class": "expander" }, g);
        plus.textContent = "+";
      }
      if (call && call.k) {
        var badge = el("text", { x: x0 + w + o + 2, y: y0 - o - 2, "class": "badge" }, g);
        badge.textContent = "\u00d7" + call.k;
      }
    }
    var ty = (n.kind === "call" || n.kind === "input" ? y0 + h : n.cy + h / 2) + LABEL_LINE;
    n.lines.forEach(function (line, k) {
      var t = el("text", { x: n.cx, y: ty + k * LABEL_LINE, "text-anchor": "middle", "class": k === 0 ? "name" : "detail" }, g);
      t.textContent = line;
    });
    var removed = call ? this.removed[String(n.index)] : null;
    if (removed) {
      var rm = el("text", { x: n.cx, y: ty + n.lines.length * LABEL_LINE, "text-anchor": "middle", "class": "removed-note" }, g);
      rm.textContent = "\u2212 " + removed.length + " removed after";
    }
    if (call && this.m.fail === n.index) {
      var callout = el("text", { x: n.cx, y: ty + (n.lines.length + (removed ? 1 : 0)) * LABEL_LINE, "text-anchor": "middle", "class": "callout" }, g);
      callout.textContent = "\u2717 " + clip(this.m.failure || "failed here", 48);
    }
    g.addEventListener("mouseenter", function () { self.show(n); });
    g.addEventListener("focus", function () { self.show(n); });
    if (call && !call.leaf) {
      g.addEventListener("click", function () { if (!self.dragged) self.toggle(n.index); });
      g.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); self.toggle(n.index); } });
    }
  };

  Viewer.prototype.changedInside = function (index) {
    for (var key in this.marks) if (this.within(Number(key), index)) return true;
    return false;
  };

  Viewer.prototype.describe = function (n) {
    var c = this.calls[n.index];
    var text = (c.n || "(root)") + (c.c ? " call " + (c.c + 1) : "") + ", " + c.t + ", output " + shapeText(c.out);
    if (c.ok === false) text += ", failed";
    if (this.marks[String(n.index)]) text += ", " + this.marks[String(n.index)] + " since the baseline";
    if (!c.leaf) text += ", folded: press Enter to open";
    return text;
  };

  /* ---- facts panel ---------------------------------------------------------------- */
  Viewer.prototype.show = function (n) {
    var box = this.facts, self = this;
    if (!box) return;
    while (box.firstChild) box.removeChild(box.firstChild);
    var rows = [], title = "", kind = "";
    if (n.kind === "call") {
      var c = this.calls[n.index], key = String(n.index);
      title = (c.n || "(root)") + (c.c ? " (call " + (c.c + 1) + ")" : "");
      kind = c.t;
      rows.push(["Input", (c["in"] || []).map(shapeText).join(", ") || "-"]);
      rows.push(["Output", c.ok === false ? "none: it failed" : shapeText(c.out)]);
      if (c.f !== undefined) rows.push(["Formula", formulaText(c.f)]);
      rows.push([c.leaf ? "Params" : "Params (with children)", count(c.np) + (c.np !== c.tp ? " (trainable " + count(c.tp) + ")" : "")]);
      if (c.k) rows.push(["Reused", "call " + (c.c + 1) + " of " + c.k + " of the same module (shared weights)"]);
      if (c.al) rows.push(["Also named", c.al.join(", ")]);
      if (this.m.flow && n.preds) rows.push(["From", n.preds.map(function (e) { return self.edgeText(e); }).join("; ") || "not traced (made in forward())"]);
      if (this.old[key]) {
        var was = this.old[key];
        rows.push(["Baseline", (was.n !== c.n || was.t !== c.t ? (was.n || "(root)") + " " + was.t + ": " : "") + shapeText(was.out) + ", " + count(was.np) + " params"]);
        rows.push(["Now", shapeText(c.out) + ", " + count(c.np) + " params"]);
      } else if (this.marks[key] === "added") rows.push(["Baseline", "not in the baseline (added)"]);
      if (this.removed[key]) rows.push(["Removed after it", this.removed[key].join("; ")]);
      (c.x || []).forEach(function (f) { rows.push(f); });
      if (this.m.fail === n.index) rows.push(["Failed", this.m.failure || "here"]);
      if (!c.leaf) rows.push(["", this.isOpen(n.index) ? "open: click its bracket to fold" : "folded: click or press Enter to open"]);
    } else if (n.kind === "junction") {
      title = n.op; kind = "op in forward()";
      rows.push(["Result", n.shape ? shapeText(n.shape) : "-"]);
      rows.push(["Of", n.preds.map(function (e) { return self.edgeText(e); }).join("; ")]);
    } else {
      title = n.lines[0]; kind = "";
      rows.push(["Shape", n.lines.slice(1).join(" ")]);
    }
    html("h3", "", box, title);
    if (kind) html("p", "kind", box, kind);
    var dl = html("dl", "", box);
    rows.forEach(function (r) { html("dt", "", dl, r[0]); html("dd", "", dl, r[1]); });
  };
  Viewer.prototype.nodeText = function (id) {
    var node = this.current.byId[id];
    if (!node) return id;
    if (node.kind === "call") { var c = this.calls[node.index]; return (c.n || "(root)") + " (" + c.t + ")"; }
    return node.kind === "junction" ? node.op : node.lines[0];
  };
  Viewer.prototype.edgeText = function (e) {
    return this.nodeText(e.id) + (e.ops && e.ops.length ? ", then " + e.ops.join(", ") : "");
  };

  /* ---- folding, search ------------------------------------------------------------ */
  Viewer.prototype.toggle = function (index) {
    var before = this.screenX(index);
    this.expanded[index] = !this.isOpen(index);
    this.render();
    var after = this.screenX(index);
    if (before !== null && after !== null) { this.view.tx += before - after; this.apply(); }
    var focus = this.svg.querySelector('[data-call="' + index + '"]');
    if (focus && focus.focus) focus.focus({ preventScroll: true });
  };
  Viewer.prototype.screenX = function (index) {
    if (!this.current) return null;
    var node = this.current.byId["c" + index];
    if (!node) {
      var f = this.frames.list.filter(function (fr) { return fr.index === index; })[0];
      return f ? f.x0 * this.view.s + this.view.tx : null;
    }
    return (node.cx - node.width / 2) * this.view.s + this.view.tx;
  };
  Viewer.prototype.matches = function () {
    var q = this.query, out = [];
    if (!q) return out;
    this.calls.forEach(function (c, i) { if ((c.n || "(root)").toLowerCase().indexOf(q) >= 0 || c.t.toLowerCase().indexOf(q) >= 0) out.push(i); });
    return out;
  };
  Viewer.prototype.highlight = function () {
    var self = this, found = this.matches(), hit = {}, inside = {};
    found.forEach(function (i) { var r = self.rep(i); if (r === i) hit[i] = true; else if (r >= 0) inside[r] = true; });
    Array.prototype.forEach.call(this.svg.querySelectorAll(".node.call"), function (g) {
      var i = Number(g.getAttribute("data-call"));
      g.classList.toggle("match", !!hit[i]);
      g.classList.toggle("match-inside", !!inside[i]);
    });
    if (this.status) this.status.textContent = this.query ? found.length + " match" + (found.length === 1 ? "" : "es") + (found.length ? " (Enter: next)" : "") : "";
  };
  Viewer.prototype.nextMatch = function (step) {
    var found = this.matches();
    if (!found.length) return;
    this.hit = ((this.hit === undefined ? -1 : this.hit) + step + found.length) % found.length;
    var index = found[this.hit];
    for (var a = this.calls[index].p; a >= 0; a = this.calls[a].p) this.expanded[a] = true;
    if (!this.calls[index].leaf) this.expanded[index] = false;
    this.render();
    this.centerOn("c" + index);
    if (this.status) this.status.textContent = (this.hit + 1) + " of " + found.length;
  };
  Viewer.prototype.centerOn = function (id) {
    var node = this.current.byId[id];
    if (!node) return;
    var box = this.stage.getBoundingClientRect();
    this.view.tx = box.width / 2 - node.cx * this.view.s;
    this.view.ty = box.height / 2 - node.cy * this.view.s;
    this.apply();
    var g = this.svg.querySelector('[data-id="' + id + '"]');
    if (g && g.focus) g.focus({ preventScroll: true });
  };

  /* ---- zoom and pan --------------------------------------------------------------- */
  Viewer.prototype.apply = function () {
    if (this.viewport) this.viewport.setAttribute("transform", "translate(" + this.view.tx + "," + this.view.ty + ") scale(" + this.view.s + ")");
  };
  Viewer.prototype.start = function () {
    var width = this.stage.clientWidth || 900;
    var s = Math.max(0.8, Math.min(1, (width - 24) / this.size.w));
    var height = Math.max(200, Math.min(640, this.size.h * s + 16));
    this.stage.style.height = height + "px";
    this.view = { s: s, tx: 12, ty: Math.max(0, (height - this.size.h * s) / 2) };
    this.started = true;
    this.apply();
  };
  Viewer.prototype.fit = function () {
    var box = this.stage.getBoundingClientRect();
    var s = Math.min((box.width - 16) / this.size.w, (box.height - 16) / this.size.h, 1.5);
    this.view = { s: s, tx: (box.width - this.size.w * s) / 2, ty: (box.height - this.size.h * s) / 2 };
    this.apply();
  };
  Viewer.prototype.zoom = function (factor, px, py) {
    var box = this.stage.getBoundingClientRect();
    var cx = px === undefined ? box.width / 2 : px, cy = py === undefined ? box.height / 2 : py;
    var s = Math.max(0.05, Math.min(4, this.view.s * factor));
    this.view.tx = cx - (cx - this.view.tx) * (s / this.view.s);
    this.view.ty = cy - (cy - this.view.ty) * (s / this.view.s);
    this.view.s = s;
    this.apply();
  };
  Viewer.prototype.installPanZoom = function () {
    var self = this, stage = this.stage, drag = null;
    stage.addEventListener("pointerdown", function (ev) {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, tx: self.view.tx, ty: self.view.ty, moved: false };
      self.dragged = false;
    });
    stage.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = self.dragged = true;
        if (stage.setPointerCapture) stage.setPointerCapture(ev.pointerId);
        stage.classList.add("dragging");
      }
      if (drag.moved) { self.view.tx = drag.tx + dx; self.view.ty = drag.ty + dy; self.apply(); }
    });
    function stop(ev) {
      if (drag && drag.moved && stage.releasePointerCapture && stage.hasPointerCapture && stage.hasPointerCapture(ev.pointerId)) stage.releasePointerCapture(ev.pointerId);
      drag = null;
      stage.classList.remove("dragging");
      setTimeout(function () { self.dragged = false; }, 0);
    }
    stage.addEventListener("pointerup", stop);
    stage.addEventListener("pointercancel", stop);
    stage.addEventListener("wheel", function (ev) {
      var box = stage.getBoundingClientRect();
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        self.zoom(ev.deltaY < 0 ? 1.12 : 1 / 1.12, ev.clientX - box.left, ev.clientY - box.top);
      } else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
        ev.preventDefault();
        self.view.tx -= ev.deltaX || ev.deltaY;
        self.apply();
      }
    }, { passive: false });
    stage.addEventListener("keydown", function (ev) {
      if (ev.target !== stage) return;
      var step = 60, done = true;
      if (ev.key === "ArrowLeft") self.view.tx += step;
      else if (ev.key === "ArrowRight") self.view.tx -= step;
      else if (ev.key === "ArrowUp") self.view.ty += step;
      else if (ev.key === "ArrowDown") self.view.ty -= step;
      else if (ev.key === "+" || ev.key === "=") self.zoom(1.25);
      else if (ev.key === "-") self.zoom(0.8);
      else if (ev.key === "0") self.fit();
      else done = false;
      if (done) { ev.preventDefault(); self.apply(); }
    });
  };

  function main() {
    var source = document.getElementById("cnnshape-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var viewers = [];
    data.models.forEach(function (model, k) {
      var section = document.getElementById("model-" + k);
      if (section && section.querySelector("svg.flow")) viewers.push(new Viewer(section, model));
    });
    window.cnnshapeViewers = viewers;
    window.cnnshapeDrawnAt = performance.now();
    document.documentElement.setAttribute("data-rendered", String(viewers.length));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
