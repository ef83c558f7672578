// clf-serve's page: pick or drop an image, POST it to /predict, show the top-k as horizontal bars.
// Plain JS, no framework, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const percent = (p) => `${(100 * p).toFixed(1)} %`;
let previewUrl = null;
let rejectBelow = null; // clf-serve --reject-below: below it the server answers pred "unknown"
let requestNumber = 0;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error} (HTTP ${response.status})`;
  } catch (_) { /* not JSON: fall through */ }
  return `The server answered HTTP ${response.status} ${response.statusText}`;
}

async function loadModel() {
  try {
    const response = await fetch("/model");
    if (!response.ok) throw new Error(await errorMessage(response));
    const model = await response.json();
    $("model-info").textContent =
      `Model ${model.name}: ${model.num_classes} classes, ${model.spec.input_size} px, ` +
      `running on ${model.provider}` + (model.tta > 1 ? `, TTA ${model.tta} views` : "") +
      (model.reject_below != null ? `, "unknown" below ${model.reject_below}` : "");
    rejectBelow = model.reject_below ?? null;
    const list = $("classes");
    list.replaceChildren(...model.classes.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }));
  } catch (err) {
    $("model-info").textContent = "The model description could not be loaded.";
    showError(err.message);
  }
}

// "unknown" (a rejected prediction) still carries the top class: topk[0] and prob are its.
function isUnknown(result) {
  return rejectBelow !== null && result.pred === "unknown";
}

function describe(result) {
  if (!isUnknown(result)) return `${result.pred} (${percent(result.prob)})`;
  return `unknown (best guess ${result.topk[0].label} ${percent(result.prob)}, below ${rejectBelow})`;
}

function showPrediction(result) {
  $("pred").textContent = result.pred;
  $("pred-prob").textContent = isUnknown(result)
    ? `best guess ${result.topk[0].label} ${percent(result.prob)}, below --reject-below ${rejectBelow}`
    : percent(result.prob);
  $("bars").replaceChildren(...result.topk.map(({ label: name, prob }) => {
    const row = document.createElement("li");
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = name;
    label.title = name;
    const track = document.createElement("span");
    track.className = "bar-track";
    track.setAttribute("aria-hidden", "true"); // the text beside it says the same
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.display = "block";
    fill.style.width = `${Math.max(0, Math.min(100, 100 * prob))}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(prob);
    row.append(label, track, value);
    return row;
  }));
  $("result").hidden = false;
}

async function classify(file) {
  if (!file) return;
  const mine = ++requestNumber; // a newer upload wins over a slower older one
  clearError();
  $("result").hidden = true;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  $("preview").src = previewUrl;
  $("preview").alt = `The uploaded image ${file.name}`;
  $("file-name").textContent = file.name;
  $("status").textContent = `Classifying ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    if (mine !== requestNumber) return;
    if (!response.ok) throw new Error(await errorMessage(response));
    const result = await response.json();
    if (mine !== requestNumber) return;
    showPrediction(result);
    $("status").textContent = `${file.name}: ${describe(result)}`;
  } catch (err) {
    if (mine !== requestNumber) return;
    $("status").textContent = "";
    showError(err.message || String(err));
  }
}

function setUp() {
  const input = $("file");
  const zone = $("drop-zone");
  input.addEventListener("change", () => classify(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) classify(file);
  });
  // A file dropped next to the zone would make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  loadModel();
}

document.addEventListener("DOMContentLoaded", setUp);
