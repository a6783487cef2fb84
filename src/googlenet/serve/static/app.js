// The page of `googlenet serve`: no framework, no build step, only this server's own API.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // the chosen File
let overlayUrl = null;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    return (await response.json()).error || response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModel() {
  const response = await fetch("/v1/model");
  if (!response.ok) return setStatus(await errorText(response), true);
  const model = await response.json();
  $("model-info").textContent =
    `${model.name}: ${model.preset}, ${model.num_classes} classes, ` +
    `input ${model.input_size} px, ${model.backend} on ${model.device}`;
  $("classes").textContent = model.classes.join(", ");
  const select = $("cam-class");
  select.replaceChildren(new Option("top-1 class", ""));
  for (const name of model.classes) select.add(new Option(name, name));
  $("cam-controls").dataset.available = model.cam ? "yes" : "no";
}

function showTopk(topk) {
  const list = $("topk");
  list.replaceChildren();
  for (const score of topk) {
    const item = document.createElement("li");
    const pct = (100 * score.prob).toFixed(1);
    item.innerHTML = '<div class="name"><span></span><span></span></div>' +
      '<div class="bar"><span></span></div>';
    item.querySelector(".name span:first-child").textContent = score.class;
    item.querySelector(".name span:last-child").textContent = `${pct}%`;
    item.querySelector(".bar span").style.width = `${pct}%`;
    list.append(item);
  }
}

async function predict(file) {
  setStatus(`Classifying ${file.name}...`);
  const started = performance.now();
  const response = await fetch("/v1/predict?topk=5", { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (!response.ok) return setStatus(await errorText(response), true);
  const answer = await response.json();
  const total = performance.now() - started;
  showTopk(answer.topk);
  setStatus(`Top class: ${answer.topk[0].class}`);
  $("latency").textContent =
    `${answer.ms.toFixed(1)} ms on the server, ${total.toFixed(0)} ms round trip`;
}

async function loadCam() {
  const overlay = $("overlay");
  if (!current || $("cam-controls").dataset.available !== "yes") return;
  const name = $("cam-class").value;
  const query = name ? `?class=${encodeURIComponent(name)}` : "";
  const response = await fetch(`/v1/cam${query}`, { method: "POST", body: current,
    headers: { "Content-Type": current.type || "application/octet-stream" } });
  if (!response.ok) return setStatus(await errorText(response), true);
  if (overlayUrl) URL.revokeObjectURL(overlayUrl);
  overlayUrl = URL.createObjectURL(await response.blob());
  overlay.dataset.class = decodeURIComponent(response.headers.get("X-Class") || "");
  overlay.src = overlayUrl;
  overlay.hidden = !$("show-cam").checked;
}

async function choose(file) {
  if (!file) return;
  current = file;
  $("photo").src = URL.createObjectURL(file);
  $("picture").hidden = false;
  $("overlay").hidden = true;
  $("cam-controls").hidden = $("cam-controls").dataset.available !== "yes";
  await Promise.all([predict(file), loadCam()]);
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
$("show-cam").addEventListener("change", (e) => { $("overlay").hidden = !e.target.checked; });
$("cam-class").addEventListener("change", loadCam);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  choose(e.dataTransfer.files[0]);
});
loadModel();
