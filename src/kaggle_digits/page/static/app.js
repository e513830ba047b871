// kaggle-digits serve: the page's behaviour. Plain JavaScript, no build step, nothing fetched
// but this server's own JSON endpoints (serve.py).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { run: null, classes: [], runs: [] };

function showMessage(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- drawing and photos ------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");

function clearCanvas() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  drawn = false;
}
let drawn = false;
let last = null;

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  last = point(event);
  pen.beginPath();
  pen.arc(last[0], last[1], 9, 0, 2 * Math.PI);
  pen.fillStyle = "#000";
  pen.fill();
  drawn = true;
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  const next = point(event);
  pen.strokeStyle = "#000";
  pen.lineWidth = 18;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(last[0], last[1]);
  pen.lineTo(next[0], next[1]);
  pen.stroke();
  last = next;
});
for (const name of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(name, () => {
    if (!last) return;
    last = null;
    predict(canvasPng(), "drawing.png", null, "drawing");
  });
}

// The canvas as a PNG, encoded now: canvas.toBlob waits for the browser's idle time, which
// a busy or headless page may not give for a second (docs/measurements.md#the-page-serve)
function canvasPng() {
  const base64 = canvas.toDataURL("image/png").split(",")[1];
  return new Blob([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], { type: "image/png" });
}
$("clear").addEventListener("click", () => {
  clearCanvas();
  showResult(null);
});

$("photo-input").addEventListener("change", () => {
  const file = $("photo-input").files[0];
  if (file) predict(file, file.name, URL.createObjectURL(file));
});
canvas.addEventListener("dragover", (event) => { event.preventDefault(); canvas.classList.add("dragging"); });
canvas.addEventListener("dragleave", () => canvas.classList.remove("dragging"));
canvas.addEventListener("drop", (event) => {
  event.preventDefault();
  canvas.classList.remove("dragging");
  const file = event.dataTransfer.files[0];
  if (file) predict(file, file.name, URL.createObjectURL(file));
});

async function predict(blob, name, photoUrl, kind = "photo") {
  if (!state.run) return showMessage("no complete run to predict with: train one with `kaggle-digits cv`");
  try {
    const query = new URLSearchParams({ run: state.run, name, kind });
    const result = await api(`/api/predict?${query}`, { method: "POST", body: blob });
    showMessage("");
    showResult(result, photoUrl);
  } catch (error) {
    showMessage(error.message);
    showResult(null);
  }
}

function showResult(result, photoUrl) {
  $("prediction").textContent = result ? String(result.prediction) : "–";
  $("seen").src = result ? result.image : "";
  $("photo").src = result && photoUrl ? photoUrl : "";
  $("photo-figure").hidden = !(result && photoUrl);
  $("box").style.display = "none";
  if (result && photoUrl) {
    $("photo").onload = () => {
      const [left, top, right, bottom] = result.box;
      const { width, height } = $("photo");
      Object.assign($("box").style, {
        display: "block", left: `${left * width}px`, top: `${top * height}px`,
        width: `${(right - left) * width}px`, height: `${(bottom - top) * height}px`,
      });
    };
  }
  $("probs").replaceChildren(...(result ? result.probs.map((p, index) => element("tr", {}, [
    element("td", { text: String(state.classes[index]) }),
    element("td", {}, [element("span", { class: "bar", style: `width:${Math.round(p * 160)}px` })]),
    element("td", { text: p.toFixed(3) }),
  ])) : []));
  $("members").replaceChildren(...(result ? result.members.map((m) =>
    element("li", { text: `${m.name}: ${m.vote} (${(m.confidence * 100).toFixed(1)}%)` })) : []));
}

// --- runs ---------------------------------------------------------------------------

async function loadRuns() {
  const answer = await api("/api/runs");
  state.runs = answer.runs;
  state.classes = answer.classes;
  const complete = answer.runs.filter((row) => row.complete).map((row) => row.run);
  for (const id of ["run", "compare-a", "compare-b"]) {
    $(id).replaceChildren(...complete.map((name) => element("option", { value: name, text: name })));
  }
  if (complete.length > 1) $("compare-b").value = complete[1];
  state.run = answer.default;
  if (state.run) $("run").value = state.run;
  else showMessage("no complete run yet: train one with `kaggle-digits cv`");
  showRunsTable();
  if (state.run) await chooseRun(state.run);
}

function fixed(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

function showRunsTable() {
  const head = element("tr", {}, ["run", "kind", "members", "OOF", "wall min", "best LB", "state"]
    .map((name) => element("th", { text: name })));
  const rows = state.runs.map((row) => {
    const line = element("tr", { "data-run": row.run, class: row.run === state.run ? "chosen" : "" }, [
      row.run, row.kind, row.members, fixed(row.oof_accuracy, 5), fixed(row.wall_minutes, 1),
      fixed(row.best_public_score, 5), row.state,
    ].map((text) => element("td", { text: String(text) })));
    line.addEventListener("click", () => showDetails(row.run));
    return line;
  });
  $("runs").replaceChildren(element("thead", {}, [head]), element("tbody", {}, rows));
}

async function showDetails(name) {
  try {
    const details = await api(`/api/runs/${encodeURIComponent(name)}`);
    const figures = details.figures.map((figure) =>
      element("img", { src: `/api/runs/${encodeURIComponent(name)}/figures/${figure}`, alt: figure }));
    const options = element("pre", { text: JSON.stringify(details.config, null, 1) });
    $("run-details").replaceChildren(element("h3", { text: name }), ...figures, options);
  } catch (error) {
    showMessage(error.message);
  }
}

$("run").addEventListener("change", () => chooseRun($("run").value));

async function chooseRun(name) {
  state.run = name;
  showRunsTable();
  await Promise.all([showConfusion(), showUnsure()]);
}

// --- mistakes -------------------------------------------------------------------------

function cards(rows) {
  return rows.map((row) => element("div", { class: "card" }, [
    element("img", { src: row.image, alt: `row ${row.row}` }),
    element("div", { text: `row ${row.row}` }),
    element("div", { text: row.true === undefined
      ? `${row.predicted} ${(row.confidence * 100).toFixed(0)}%`
      : `${row.true}→${row.predicted} ${(row.confidence * 100).toFixed(0)}%` }),
  ]));
}

function matrixTable(counts, onCell) {
  const classes = state.classes;
  const head = element("tr", {}, [element("th", { text: "true \\ called" }),
    ...classes.map((c) => element("th", { text: String(c) }))]);
  const rows = counts.map((line, trueIndex) => element("tr", {}, [
    element("th", { text: String(classes[trueIndex]) }),
    ...line.map((count, predictedIndex) => {
      const wrong = trueIndex !== predictedIndex && count > 0;
      const cell = element("td", { text: String(count), class: wrong ? "wrong" : "",
        "data-true": trueIndex, "data-predicted": predictedIndex });
      if (wrong && onCell) cell.addEventListener("click", () => onCell(cell, trueIndex, predictedIndex));
      return cell;
    }),
  ]));
  return element("table", { class: "matrix" }, [head, ...rows]);
}

async function showConfusion() {
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/confusion`);
    const table = matrixTable(answer.counts, openCell);
    $("confusion").replaceChildren(...table.childNodes);
    $("confusion").className = "matrix";
    $("mistakes").replaceChildren();
    $("mistakes-title").textContent = "";
  } catch (error) {
    showMessage(error.message);
  }
}

async function openCell(cell, trueIndex, predictedIndex) {
  for (const open of document.querySelectorAll("td.open")) open.classList.remove("open");
  cell.classList.add("open");
  const query = new URLSearchParams({ true: trueIndex, predicted: predictedIndex });
  const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/mistakes?${query}`);
  $("mistakes-title").textContent =
    `${answer.total} training row(s) of ${state.classes[trueIndex]} called ${state.classes[predictedIndex]}, most confident first`;
  $("mistakes").replaceChildren(...cards(answer.rows));
}

async function showUnsure() {
  try {
    const answer = await api(`/api/runs/${encodeURIComponent(state.run)}/unsure`);
    $("unsure").replaceChildren(...cards(answer.rows));
  } catch (error) {
    showMessage(error.message);
  }
}

// --- two runs ---------------------------------------------------------------------------

$("compare").addEventListener("click", async () => {
  const [first, second] = [$("compare-a").value, $("compare-b").value];
  try {
    const answer = await api(`/api/compare?${new URLSearchParams({ a: first, b: second })}`);
    const scores = element("table", {}, [
      element("tr", {}, ["", first, second].map((text) => element("th", { text }))),
      element("tr", {}, [element("td", { text: "OOF" }),
        ...answer.oof_accuracy.map((v) => element("td", { text: v.toFixed(5) }))]),
      ...answer.fold_accuracies[0].map((_, fold) => element("tr", {}, [
        element("td", { text: `fold ${fold + 1}` }),
        ...answer.fold_accuracies.map((folds) => element("td", { text: folds[fold].toFixed(5) }))])),
    ]);
    $("comparison").replaceChildren(
      scores,
      element("div", { class: "row" }, answer.confusion.map((counts, index) =>
        element("div", {}, [element("h3", { text: answer.runs[index] }), matrixTable(counts, null)]))),
      element("h3", { text: `${answer.only_first_right.total} row(s) only ${first} gets right (${second}'s call shown)` }),
      element("div", { class: "cards" }, cards(answer.only_first_right.rows)),
      element("h3", { text: `${answer.only_second_right.total} row(s) only ${second} gets right (${first}'s call shown)` }),
      element("div", { class: "cards" }, cards(answer.only_second_right.rows)),
    );
    showMessage("");
  } catch (error) {
    showMessage(error.message);
  }
});

clearCanvas();
loadRuns().catch((error) => showMessage(error.message));
