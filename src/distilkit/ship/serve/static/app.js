// The demo page: ask every loaded model the same thing at once, show each answer with its latency.
"use strict";

const $ = (id) => document.getElementById(id);
let info = { models: {} };

function kindOf(name) {
  return (info.models[name] || {}).kind || "classification";
}

function describe(name) {
  const m = info.models[name];
  if (!m) return "";
  const params = !m.params ? "" : m.params >= 1e5 ? `${(m.params / 1e6).toFixed(1)} M params, ` : `${m.params.toLocaleString()} params, `;
  return `(${m.layers} layers, ${params}${m.backend})`;
}

function render(kind, prediction, second) {
  if (kind === "classification") {
    if (prediction.label === undefined) return `score ${prediction.score.toFixed(3)}`;
    return `${prediction.label} (${(100 * prediction.score).toFixed(1)}%)`;
  }
  if (kind === "token-classification") {
    if (!prediction.entities) return prediction.words.map((w) => `${w.text}/${w.tag}`).join(" ");
    if (!prediction.entities.length) return "no entities";
    return prediction.entities.map((e) => `${e.text} → ${e.label}`).join("\n");
  }
  if (kind === "qa") return prediction.answer || "(no answer)";
  if (second) return `similarity ${cosine(prediction.embedding, second.embedding).toFixed(3)}`;
  return `${prediction.dim}-d embedding [${prediction.embedding.slice(0, 4).map((x) => x.toFixed(3)).join(", ")}, …]`;
}

function cosine(a, b) {
  // A model's sentence config decides whether the server L2-normalises, so divide by the norms here.
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa && bb ? dot / Math.sqrt(aa * bb) : 0;
}

function request(name) {
  const text = $("text").value;
  const kind = kindOf(name);
  if (kind === "qa") return { model: name, question: text, context: $("text-b").value };
  const second = $("text-b").value;
  if (kind === "embedding" && second.trim()) return { model: name, texts: [text, second] };
  return { model: name, text: text };
}

async function ask(name) {
  const answer = $(`answer-${name}`);
  const latency = $(`latency-${name}`);
  answer.dataset.state = "pending";
  answer.textContent = "…";
  latency.textContent = "";
  const started = performance.now();
  try {
    const response = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request(name)),
    });
    const body = await response.json();
    const roundTrip = performance.now() - started;
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    const [first, second] = body.predictions;
    answer.textContent = render(body.kind, first, second);
    latency.textContent = `${body.latency_ms.toFixed(1)} ms in the server · ${roundTrip.toFixed(1)} ms round trip`;
    answer.dataset.state = "done";
    return first;
  } catch (error) {
    answer.textContent = `error: ${error.message}`;
    answer.dataset.state = "error";
    return null;
  }
}

async function askAll(event) {
  event.preventDefault();
  $("run").disabled = true;
  $("agreement").textContent = "";
  // One model at a time: run together they would share the CPU and each latency would include the other's work.
  const names = Object.keys(info.models);
  const results = [];
  for (const name of names) results.push(await ask(name));
  const [teacher, student] = [results[names.indexOf("teacher")], results[names.indexOf("student")]];
  if (teacher && student && teacher.embedding && student.embedding && teacher.dim === student.dim) {
    $("agreement").textContent = `teacher–student embedding cosine: ${cosine(teacher.embedding, student.embedding).toFixed(3)}`;
  } else if (teacher && student && teacher.label !== undefined) {
    $("agreement").textContent = teacher.label === student.label ? "teacher and student agree" : "teacher and student disagree";
  }
  $("run").disabled = false;
}

async function start() {
  const response = await fetch("/info");
  info = await response.json();
  for (const name of Object.keys(info.models)) {
    $(`panel-${name}`).hidden = false;
    $(`meta-${name}`).textContent = describe(name);
  }
  const kind = kindOf("student");
  if (kind === "qa") {
    $("text-label").textContent = "Question";
    $("text-b-label").textContent = "Context";
    $("pair").hidden = false;
  } else if (kind === "embedding") {
    $("pair").hidden = false;
  } else if (kind === "token-classification") {
    $("text").placeholder = "Ada Lovelace worked with Charles Babbage in London.";
  }
  $("footer").textContent = `served by distilkit · ${kind} model · micro-batches of up to ${info.limits.max_batch}`;
  $("ask").addEventListener("submit", askAll);
  document.body.dataset.ready = "true";
}

start();
