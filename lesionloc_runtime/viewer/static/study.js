// lesionloc study page: the report's sentences beside the radiograph; hovering or choosing a
// sentence shows its heatmap layer (coloured by the #jet filter), boxes and peak over the film.
// Everything comes from this file and the images beside it: the page makes no request. It runs
// as a module script: its own scope, strict mode, after the document is parsed.
var data = JSON.parse(document.getElementById("lesionloc-data").textContent);
var W = data.image.width, H = data.image.height;
var sentences = data.sentences || [];
var images = data.radiograph_images || {};
var SVG = "http://www.w3.org/2000/svg";  // a namespace name, never fetched
var MUTED = {negated: 1, normal: 1, other: 1};
var state = {current: -1, hover: -1, heat: true, boxes: true, full: false, opacity: 0.55,
             zoom: 1, x: 0, y: 0, base: 1};
var $ = function (id) { return document.getElementById(id); };
var items = [], layers = {};

function el(tag, cls, text) {
  var node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function fmt(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : "–";
}

// --- header -----------------------------------------------------------------------------
function header() {
  document.title = data.study_id + " · lesionloc";
  $("study-title").textContent = data.study_id;
  var model = data.model || {};
  $("model").textContent = "model " + (model.name || "?") +
    (model.quantization ? " (" + model.quantization + ")" : "") + " · " + W + "×" + H + " px";
  $("notice").textContent = data.notice || "";
  if (model.demo) $("notice").classList.add("demo");
  if (data.index) $("index-link").hidden = false;
  if (data.identifiers) {
    var parts = Object.keys(data.identifiers).map(function (k) {
      return k + ": " + data.identifiers[k];
    });
    $("identifiers").textContent = parts.join(" · ");
    $("identifiers").hidden = false;
  }
  if (typeof data.report_image_score === "number")
    $("report-score").textContent = "report–image score " + fmt(data.report_image_score, 3);
}

// --- sentence list ----------------------------------------------------------------------
function spanText(sentence) {
  // grounded_span offsets count code points (Python); JS strings count UTF-16 units
  var span = sentence.grounded_span, chars = Array.from(sentence.text || "");
  if (!span || typeof span.start !== "number" || typeof span.end !== "number") return null;
  var middle = chars.slice(span.start, span.end).join("");
  if (span.text && middle !== span.text) {
    var at = (sentence.text || "").indexOf(span.text);
    if (at < 0) return null;
    return [sentence.text.slice(0, at), span.text, sentence.text.slice(at + span.text.length)];
  }
  return [chars.slice(0, span.start).join(""), middle, chars.slice(span.end).join("")];
}

function sentenceItem(sentence, i) {
  var li = el("li");
  li.dataset.index = i;
  li.setAttribute("role", "option");
  if (MUTED[sentence.kind]) li.classList.add("muted");
  if (sentence.uncertain) li.classList.add("uncertain");
  var meta = el("div", "meta");
  meta.appendChild(el("span", "num", "[" + (sentence.index + 1) + "]"));
  var kind = sentence.section === "query" ? "query" : sentence.kind;
  meta.appendChild(el("span", "kind " + kind, kind));
  meta.appendChild(el("span", "score", "score " + fmt(sentence.score, 3)));
  if (sentence.uncertain) meta.appendChild(el("span", "flag", "uncertain"));
  if (!sentence.grounded) meta.appendChild(el("span", null, "no heatmap"));
  else meta.appendChild(el("span", null, (sentence.boxes || []).length + " box(es)"));
  li.appendChild(meta);
  var text = el("div", "text"), parts = spanText(sentence);
  if (parts) {
    text.appendChild(document.createTextNode(parts[0]));
    var mark = el("mark", null, parts[1]);
    mark.title = "the part of the sentence that was grounded";
    text.appendChild(mark);
    text.appendChild(document.createTextNode(parts[2]));
  } else {
    text.textContent = sentence.text;
  }
  li.appendChild(text);
  li.addEventListener("mouseenter", function () { state.hover = i; render(); });
  li.addEventListener("mouseleave", function () { state.hover = -1; render(); });
  li.addEventListener("click", function () { select(i); });
  return li;
}

function buildList() {
  var list = $("sentences");
  list.setAttribute("role", "listbox");
  sentences.forEach(function (sentence, i) {
    var li = sentenceItem(sentence, i);
    items.push(li);
    list.appendChild(li);
    if (sentence.layer && sentence.layer.file) {
      var img = el("img");
      img.alt = "";
      img.hidden = true;
      img.dataset.index = i;
      img.src = sentence.layer.file;
      layers[i] = img;
      $("layers").appendChild(img);
    }
  });
}

function select(i) {
  if (!sentences.length) return;
  state.current = Math.max(0, Math.min(sentences.length - 1, i));
  state.hover = -1;  // a pointer resting on another sentence must not hide the chosen one
  items.forEach(function (li, k) {
    li.classList.toggle("current", k === state.current);
    li.setAttribute("aria-selected", k === state.current ? "true" : "false");
  });
  items[state.current].scrollIntoView({block: "nearest"});
  render();
}

// --- what is drawn over the film ----------------------------------------------------------
function shown() { return state.hover >= 0 ? state.hover : state.current; }

function svgNode(tag, attrs) {
  var node = document.createElementNS(SVG, tag);
  Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  node.setAttribute("vector-effect", "non-scaling-stroke");
  return node;
}

function drawMarks(sentence) {
  var marks = $("marks");
  while (marks.firstChild) marks.removeChild(marks.firstChild);
  if (!sentence || !state.boxes) return;
  (sentence.boxes || []).forEach(function (b) {
    var r = b.box, attrs = {x: r[0], y: r[1], width: r[2], height: r[3]};
    var rect = svgNode("rect", attrs);
    var title = document.createElementNS(SVG, "title");
    title.textContent = "box score " + fmt(b.score, 3);
    rect.appendChild(title);
    marks.appendChild(rect);
  });
  if (sentence.peak) {
    var p = sentence.peak, arm = Math.max(W, H) * 0.02, d = "M" + (p.x - arm) + " " + p.y +
      "H" + (p.x + arm) + "M" + p.x + " " + (p.y - arm) + "V" + (p.y + arm);
    marks.appendChild(svgNode("path", {d: d, "class": "halo"}));
    marks.appendChild(svgNode("path", {d: d, "class": "peak"}));
  }
}

function jet(t) {  // OpenCV's jet at t in [0, 1], as the #jet filter's tables
  var knots = [[0, 0, .5], [0, 0, 1], [0, .5, 1], [0, 1, 1], [.5, 1, .5], [1, 1, 0],
               [1, .5, 0], [1, 0, 0], [.5, 0, 0]];
  var x = Math.max(0, Math.min(1, t)) * 8, k = Math.min(7, Math.floor(x)), f = x - k;
  return knots[k].map(function (v, c) { return Math.round(255 * (v + (knots[k + 1][c] - v) * f)); });
}

function legend(sentence) {
  var layer = sentence && sentence.layer;
  $("legend").style.visibility = layer && state.heat ? "visible" : "hidden";
  if (!layer) return;
  $("legend-min").textContent = fmt(layer.min, 3);
  $("legend-max").textContent = fmt(layer.max, 3);
  var stops = [];
  for (var k = 0; k <= 16; k++) {
    var t = k / 16, c = jet(t), a = state.opacity * Math.pow(t, 1.5);
    stops.push("rgba(" + c.join(",") + "," + a.toFixed(3) + ") " + (100 * t).toFixed(1) + "%");
  }
  $("legend-bar").style.background = "linear-gradient(to right," + stops.join(",") + "), #808080";
}

function detail(sentence) {
  var box = $("detail");
  while (box.firstChild) box.removeChild(box.firstChild);
  if (!sentence) return;
  if (!sentence.grounded) {
    box.textContent = sentence.kind === "finding" ? "No heatmap for this sentence." :
      "No heatmap: " + sentence.kind + " sentences are only grounded with --all-sentences.";
    return;
  }
  var table = el("table"), spacing = data.image.pixel_spacing_mm;
  function row(label, value) {
    var tr = el("tr");
    tr.appendChild(el("td", null, label));
    tr.appendChild(el("td", null, value));
    table.appendChild(tr);
  }
  if (sentence.peak)
    row("peak", "x " + fmt(sentence.peak.x, 0) + ", y " + fmt(sentence.peak.y, 0) +
        " px, value " + fmt(sentence.peak.value, 3));
  (sentence.boxes || []).forEach(function (b, k) {
    var r = b.box, size = fmt(r[2], 0) + "×" + fmt(r[3], 0) + " px";
    if (spacing) size += " (" + fmt(r[2] * spacing[1], 0) + "×" + fmt(r[3] * spacing[0], 0) + " mm)";
    row("box " + (k + 1), "x " + fmt(r[0], 0) + ", y " + fmt(r[1], 0) + ", " + size +
        ", score " + fmt(b.score, 3));
  });
  box.appendChild(table);
}

function render() {
  var i = shown(), sentence = sentences[i];
  Object.keys(layers).forEach(function (k) {
    layers[k].hidden = !(state.heat && Number(k) === i);
    layers[k].style.opacity = state.opacity;
  });
  drawMarks(sentence);
  legend(sentence);
  detail(sentence);
  $("toggle-heat").setAttribute("aria-pressed", String(state.heat));
  $("toggle-boxes").setAttribute("aria-pressed", String(state.boxes));
}

// --- film: brightness/contrast, full resolution, zoom and pan -------------------------------
function place() {
  $("world").style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" +
    state.zoom + ")";
}

function fit() {
  var stage = $("stage"), sw = stage.clientWidth, sh = stage.clientHeight;
  state.base = Math.min(sw / W, sh / H);
  $("world").style.width = W * state.base + "px";
  $("world").style.height = H * state.base + "px";
  $("marks").setAttribute("viewBox", "0 0 " + W + " " + H);
  state.zoom = 1;
  state.x = (sw - W * state.base) / 2;
  state.y = (sh - H * state.base) / 2;
  place();
  pressFull(false);
}

function zoomAt(factor, cx, cy) {
  var zoom = Math.max(0.5, Math.min(64, state.zoom * factor));
  state.x = cx - (cx - state.x) * zoom / state.zoom;
  state.y = cy - (cy - state.y) * zoom / state.zoom;
  state.zoom = zoom;
  place();
}

function zoomCentre(factor) {
  var stage = $("stage");
  zoomAt(factor, stage.clientWidth / 2, stage.clientHeight / 2);
}

function filmFilter() {
  $("film").style.filter = "brightness(" + $("brightness").value + ") contrast(" +
    $("contrast").value + ")";
}

// Full resolution: one image pixel to one CSS pixel, about the middle of the view; again: fitted.
function setFull(full) {
  if (full) zoomCentre(1 / (state.base * state.zoom));
  else fit();
  pressFull(full);
}

function pressFull(full) {
  state.full = full;
  $("toggle-full").setAttribute("aria-pressed", String(full));
}

function panAndZoom() {
  var stage = $("stage"), drag = null;
  stage.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = stage.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.002), e.clientX - r.left, e.clientY - r.top);
  }, {passive: false});
  stage.addEventListener("pointerdown", function (e) {
    drag = {x: e.clientX - state.x, y: e.clientY - state.y};
    stage.setPointerCapture(e.pointerId);
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", function (e) {
    if (!drag) return;
    state.x = e.clientX - drag.x;
    state.y = e.clientY - drag.y;
    place();
  });
  function end() { drag = null; stage.classList.remove("dragging"); }
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  stage.addEventListener("dblclick", fit);
  window.addEventListener("resize", fit);
}

// --- controls and keys --------------------------------------------------------------------
function toggle(name) { state[name] = !state[name]; render(); }

function controls() {
  $("opacity").addEventListener("input", function () {
    state.opacity = Number($("opacity").value);
    render();
  });
  $("brightness").addEventListener("input", filmFilter);
  $("contrast").addEventListener("input", filmFilter);
  $("toggle-heat").addEventListener("click", function () { toggle("heat"); });
  $("toggle-boxes").addEventListener("click", function () { toggle("boxes"); });
  $("zoom-in").addEventListener("click", function () { zoomCentre(1.5); });
  $("zoom-out").addEventListener("click", function () { zoomCentre(1 / 1.5); });
  $("fit").addEventListener("click", fit);
  $("toggle-full").addEventListener("click", function () { setFull(!state.full); });
  if (images.full) $("full-link").href = images.full.file;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key, handled = true;
    if (key === "ArrowDown" || key === "j") select(state.current + 1);
    else if (key === "ArrowUp" || key === "k") select(state.current - 1);
    else if (key === "h" || key === "H") toggle("heat");
    else if (key === "b" || key === "B") toggle("boxes");
    else if (key === "f" || key === "F") setFull(!state.full);
    else if (key === "+" || key === "=") zoomCentre(1.5);
    else if (key === "-" || key === "_") zoomCentre(1 / 1.5);
    else if (key === "0") fit();
    else handled = false;
    if (handled) e.preventDefault();
  });
}

function whenLoaded() {
  // Tests and screenshots wait for this: the film and every layer decoded.
  var pending = [$("film")].concat(Object.keys(layers).map(function (k) { return layers[k]; }));
  Promise.all(pending.map(function (img) {
    return img.decode ? img.decode().catch(function () {}) : Promise.resolve();
  })).then(function () { document.body.dataset.ready = "true"; });
}

header();
buildList();
$("film").src = (images.full || images.screen).file;  // the one film, whatever its size
controls();
panAndZoom();
fit();
var first = sentences.findIndex(function (s) { return s.grounded; });
select(first >= 0 ? first : 0);
whenLoaded();
