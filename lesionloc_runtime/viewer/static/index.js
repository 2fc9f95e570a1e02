// lesionloc batch index: one row per finished study, searchable by text, filterable by sentence
// kind and score; a row opens its study page. Everything is in this file: no request is made.
var studies = JSON.parse(document.getElementById("lesionloc-data").textContent).studies || [];
var $ = function (id) { return document.getElementById(id); };
var MUTED = {negated: 1, normal: 1, other: 1};
var rows = [];
var filled = null;  // the kind and minimum score the rows' sentence cells show

function el(tag, cls, text) {
  var node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function href(id) { return encodeURIComponent(id) + "/study.html"; }

function counts(study) {
  var n = {};
  study.sentences.forEach(function (s) { n[s.k] = (n[s.k] || 0) + 1; });
  return Object.keys(n).sort().map(function (k) { return n[k] + " " + k; }).join(" · ");
}

// The sentences a row shows under the current filters: those of the chosen kind (findings
// and queries when none is chosen) whose score reaches the minimum.
function chosen(study, kind, min) {
  return study.sentences.filter(function (s) {
    var ofKind = kind === "uncertain" ? !!s.u : kind ? s.k === kind : (s.k === "finding" || s.q);
    return ofKind && (min === null || (typeof s.s === "number" && s.s >= min));
  });
}

function sentenceLine(s) {
  var line = el("div", "sentence");
  if (MUTED[s.k]) line.classList.add("muted");
  if (s.u) line.classList.add("uncertain");
  line.appendChild(el("span", "score", typeof s.s === "number" ? s.s.toFixed(3) : "–"));
  var text = el("span", "text", s.t);
  line.appendChild(text);
  if (s.k !== "finding") line.appendChild(el("span", "flag", s.q ? "query" : s.k));
  if (s.u) line.appendChild(el("span", "flag", "uncertain"));
  return line;
}

function buildRow(study) {
  var tr = el("tr", "study");
  tr.tabIndex = 0;
  tr.dataset.id = study.id;
  var id = el("td", "id"), link = el("a", null, study.id);
  link.href = href(study.id);
  id.appendChild(link);
  id.appendChild(el("div", "counts", counts(study)));
  tr.appendChild(id);
  tr.appendChild(el("td", "sentences"));
  tr.appendChild(el("td", "best"));
  tr.addEventListener("click", function (e) {
    if (e.target.tagName !== "A") window.location.href = href(study.id);
  });
  tr.addEventListener("keydown", function (e) {
    if (e.key === "Enter") window.location.href = href(study.id);
  });
  var text = [study.id].concat(study.sentences.map(function (s) { return s.t; }));
  return {study: study, tr: tr, text: text.join("\n").toLowerCase(), best: -Infinity,
          shown: []};
}

function fill(row, shown) {
  var cell = row.tr.children[1];
  while (cell.firstChild) cell.removeChild(cell.firstChild);
  shown.forEach(function (s) { cell.appendChild(sentenceLine(s)); });
  if (!shown.length) cell.appendChild(el("span", "none", "no sentence of this kind"));
  row.best = shown.reduce(function (m, s) {
    return typeof s.s === "number" && s.s > m ? s.s : m;
  }, -Infinity);
  row.tr.children[2].textContent = row.best > -Infinity ? row.best.toFixed(3) : "–";
}

function update() {
  var terms = $("search").value.toLowerCase().split(/\s+/).filter(Boolean);
  var kind = $("kind").value, raw = $("min-score").value.trim();
  var min = raw === "" || isNaN(Number(raw)) ? null : Number(raw);
  var visible = 0, refill = kind + "|" + min !== filled;
  filled = kind + "|" + min;
  rows.forEach(function (row) {
    if (refill) row.shown = chosen(row.study, kind, min);
    if (refill) fill(row, row.shown);
    var match = terms.every(function (t) { return row.text.indexOf(t) >= 0; }) &&
      (row.shown.length > 0 || (!kind && min === null));
    row.tr.hidden = !match;
    if (match) visible++;
  });
  if ($("sort").value === "score") {
    var order = rows.slice().sort(function (a, b) {
      return b.best - a.best || (a.study.id < b.study.id ? -1 : 1);
    });
    var body = document.querySelector("#studies tbody");
    order.forEach(function (row) { body.appendChild(row.tr); });
  } else {
    rows.forEach(function (row) { row.tr.parentNode.appendChild(row.tr); });
  }
  $("count").textContent = visible + " of " + rows.length + " studies shown";
  $("empty").hidden = visible > 0;
}

function header() {
  $("total").textContent = studies.length + (studies.length === 1 ? " study" : " studies");
  var demo = studies.filter(function (s) { return s.demo; })[0];
  var notice = demo || studies[0];
  if (notice) $("notice").textContent = notice.notice || "";
  if (demo) $("notice").classList.add("demo");
}

header();
var body = document.querySelector("#studies tbody");
studies.forEach(function (study) {
  var row = buildRow(study);
  rows.push(row);
  body.appendChild(row.tr);
});
["search", "kind", "min-score", "sort"].forEach(function (id) {
  $(id).addEventListener("input", update);
  $(id).addEventListener("change", update);
});
$("filters").addEventListener("submit", function (e) { e.preventDefault(); });
document.addEventListener("keydown", function (e) {
  if (e.key === "/" && document.activeElement !== $("search")) {
    e.preventDefault();
    $("search").focus();
  }
});
update();
document.body.dataset.ready = "true";
