// The somelvlm page: a post (text and/or image) -> POST /v1/analyze (multipart) -> results grouped by
// cognitive level, probability bars, generated texts and a radar chart drawn here in SVG (no libraries).
// Every server string is inserted with textContent, never as HTML.
"use strict";

const COLORS = ["#3b5bdb", "#0ca678", "#f08c00", "#ae3ec9", "#e8590c"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const pretty = (id) => id.replace(/_/g, " ");

function headers() {
  const token = $("token").value.trim() || localStorage.getItem("somelvlm-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}

async function init() {
  try {
    const health = await (await fetch("/healthz")).json();
    $("status").textContent = "model " + health.model + (health.generator ? " · generator " + health.generator : " · no generator loaded");
    if (health.auth) {
      $("token-row").hidden = false;
      $("token").value = localStorage.getItem("somelvlm-token") || "";
    }
    const res = await fetch("/v1/levels", { headers: headers() });
    const levels = res.ok ? await res.json() : [];
    const box = $("levels");
    levels.forEach((lv, i) => {
      const label = el("label");
      const input = el("input");
      input.type = "checkbox";
      input.name = "levels";
      input.value = lv.id;
      input.checked = lv.tasks.length > 0;
      input.disabled = lv.tasks.length === 0;
      label.style.setProperty("--level-color", COLORS[i % COLORS.length]);
      label.append(input, el("span", null, lv.name), el("small", null, lv.tasks.length ? lv.tasks.length + " tasks" : "nothing to run"));
      label.title = lv.description;
      box.append(label);
    });
  } catch (err) {
    $("status").textContent = "cannot reach the server: " + err;
  }
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

$("image").addEventListener("change", () => {
  const file = $("image").files[0];
  $("preview").hidden = !file;
  $("clear-image").hidden = !file;
  if (file) $("preview").src = URL.createObjectURL(file);
});

$("clear-image").addEventListener("click", () => {
  $("image").value = "";
  $("preview").hidden = true;
  $("clear-image").hidden = true;
});

$("post-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  const text = $("text").value.trim();
  const file = $("image").files[0];
  const levels = [...document.querySelectorAll("input[name=levels]:checked")].map((i) => i.value);
  if (!text && !file) return showError("Paste a post or add an image.");
  if (!levels.length) return showError("Choose at least one level.");
  if ($("token").value.trim()) localStorage.setItem("somelvlm-token", $("token").value.trim());
  const form = new FormData();
  if (text) form.append("text", text);
  if (file) form.append("image", file);
  form.append("levels", levels.join(","));
  $("submit").disabled = true;
  $("submit").textContent = "Analyzing…";
  try {
    const res = await fetch("/v1/analyze", { method: "POST", body: form, headers: headers() });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      if (res.status === 401) $("token-row").hidden = false;
      return showError((body.error && body.error.message) || "the server answered " + res.status);
    }
    render(body);
  } catch (err) {
    showError("request failed: " + err);
  } finally {
    $("submit").disabled = false;
    $("submit").textContent = "Analyze";
  }
});

function bar(name, value, max, isTop) {
  const row = el("div", "bar" + (isTop ? " top" : ""));
  const track = el("div", "track");
  const fill = el("div", "fill");
  fill.style.width = Math.max(0, Math.min(100, (100 * value) / max)).toFixed(1) + "%";
  track.append(fill);
  row.append(el("span", "name", pretty(name)), track, el("span", "val", max === 1 ? (100 * value).toFixed(0) + "%" : value.toFixed(2)));
  row.title = pretty(name) + ": " + value;
  return row;
}

function probBars(result, limit) {
  const frag = document.createDocumentFragment();
  const entries = Object.entries(result.probs).sort((a, b) => b[1] - a[1]).slice(0, limit);
  entries.forEach(([name, p]) => frag.append(bar(name, p, 1, name === result.label)));
  return frag;
}

// A head's answer on a post outside what it was trained on ("in_domain": false) is shown as "out of
// domain", its label and bars dimmed; "in_domain": null (a model without applicability data) shows nothing.
function domainNote(r) {
  if (!r || r.in_domain === undefined || r.in_domain === null) return null;
  const score = typeof r.domain_score === "number" ? r.domain_score.toFixed(2) : "?";
  const note = el("p", "domain " + (r.in_domain ? "in" : "out"),
    r.in_domain ? "within what this head was trained on (domain score " + score + ")"
      : "outside what this head was trained on (domain score " + score + "): do not rely on this answer");
  return note;
}

function taskBlock(entry, body) {
  const box = el("div", "task");
  box.dataset.task = entry.task;
  const head = el("div", "task-head");
  head.append(el("span", "task-name", pretty(entry.task)));
  box.title = entry.family;
  const r = body.results[entry.task];
  const outOfDomain = r !== undefined && r.in_domain === false;
  if (outOfDomain) {
    box.classList.add("ood");
    box.dataset.inDomain = "false";
    head.append(el("span", "task-label ood-label", "out of domain"));
  } else if (r !== undefined && r.in_domain === true) {
    box.dataset.inDomain = "true";
  }
  if (r === undefined) {
    head.append(el("span", "task-label", "generated"));
    box.append(head, el("div", "generated", body.generated[entry.task] || "(empty)"));
  } else if (r.withheld) {  // the head is not served: no better than trivial baselines on validation
    head.append(el("span", "task-label", "withheld"));
    box.append(head, el("p", "withheld", r.withheld));
  } else if ("value" in r) {
    head.append(el("span", "task-label", r.value.toFixed(2) + " / 5"));
    box.append(head, bar("rating", r.value, 5, true));
  } else if ("targets" in r) {
    head.append(el("span", "task-label", Object.keys(r.targets).length + " targets"));
    box.append(head);
    for (const [target, t] of Object.entries(r.targets)) {
      box.append(el("p", "target", pretty(target) + ": " + pretty(t.label) + " (" + (100 * t.prob).toFixed(0) + "%)"));
    }
  } else {
    head.append(el("span", "task-label", pretty(r.label)));
    box.append(head, probBars(r, 4));
  }
  const note = domainNote(r);
  if (note) box.append(note);
  return box;
}

function render(body) {
  $("results").hidden = false;
  const meta = [body.text_source === "ocr" ? "text read from the image (OCR)" : null,
    body.image ? "image " + body.image.width + "×" + body.image.height : null,
    Object.keys(body.results).length + " labels", Object.keys(body.generated).length + " generated",
    (1000 * body.seconds).toFixed(0) + " ms"].filter(Boolean);
  $("meta").textContent = meta.join(" · ");
  $("text-read").hidden = !body.text_read;
  $("text-read").textContent = body.text_read ? "Read from the image: “" + body.text_read + "”" : "";
  const cards = $("level-cards");
  cards.replaceChildren();
  body.levels.forEach((lv, i) => {
    const card = el("article", "level");
    card.dataset.level = lv.id;
    card.style.setProperty("--level-color", COLORS[i % COLORS.length]);
    const head = el("header");
    head.append(el("h3", null, lv.name), el("span", "score", lv.score === null ? "" : "confidence " + (100 * lv.score).toFixed(0) + "%"));
    card.append(head, el("p", "desc", lv.description));
    if (!lv.tasks.length) card.append(el("p", "empty", "nothing ran at this level"));
    lv.tasks.forEach((entry) => card.append(taskBlock(entry, body)));
    cards.append(card);
  });
  const reasons = {};
  for (const [task, why] of Object.entries(body.skipped)) (reasons[why] = reasons[why] || []).push(pretty(task));
  if (Object.keys(reasons).length) {
    const note = el("details", "panel not-run");
    note.append(el("summary", null, Object.keys(body.skipped).length + " tasks of the chosen levels did not run"));
    for (const [why, tasks] of Object.entries(reasons)) note.append(el("p", "skipped", why + ": " + tasks.join(", ")));
    cards.append(note);
  }
  radar(body.levels);
}

function radar(levels) {
  const chart = $("radar");
  chart.replaceChildren();
  const cx = 210, cy = 152, R = 100, n = levels.length;
  const point = (i, r) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  };
  for (const f of [0.25, 0.5, 0.75, 1]) {
    const pts = levels.map((_, i) => point(i, R * f).join(",")).join(" ");
    chart.append(svg("polygon", { points: pts, fill: "none", stroke: "#e3e6ee", "stroke-width": 1 }));
  }
  levels.forEach((lv, i) => {
    const [x, y] = point(i, R);
    chart.append(svg("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: "#e3e6ee" }));
    const [lx, ly] = point(i, R + 22);
    const anchor = Math.abs(lx - cx) < 10 ? "middle" : lx > cx ? "start" : "end";
    const label = svg("text", { x: lx, y: ly, "text-anchor": anchor, "font-size": 11.5, fill: COLORS[i % COLORS.length], "font-weight": 600 });
    const words = lv.name.split(" & ");
    words.forEach((w, k) => label.append(svg("tspan", { x: lx, dy: k === 0 ? (words.length > 1 ? "-0.3em" : "0.35em") : "1.15em" }, w + (k < words.length - 1 ? " &" : ""))));
    chart.append(label);
  });
  const pts = levels.map((lv, i) => point(i, R * (lv.score || 0)).join(",")).join(" ");
  chart.append(svg("polygon", { points: pts, fill: "rgba(59,91,219,0.18)", stroke: "#3b5bdb", "stroke-width": 2, "stroke-linejoin": "round", id: "radar-shape" }));
  levels.forEach((lv, i) => {
    if (lv.score === null) return;
    const [x, y] = point(i, R * lv.score);
    const dot = svg("circle", { cx: x, cy: y, r: 4, fill: COLORS[i % COLORS.length], class: "radar-point" });
    dot.append(svg("title", {}, lv.name + ": " + (100 * lv.score).toFixed(0) + "%"));
    chart.append(dot);
  });
}

init();
