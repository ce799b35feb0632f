// The explorer's page. All state lives here, one copy per tab; the server only
// decodes, samples and encodes what each request carries (vae_tf/views/explorer.py).
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  base: null,        // the code chosen by a sample, an image or the blend
  directions: [],    // direction slider values, in standard deviations of the codes
  attributes: [],    // attribute slider values, multiples of each attribute vector
  code: null,        // the code whose image is on screen
  samples: [],       // codes of the sample grid
  chosen: null,      // {image, reconstruction, code} shown under "Your image"
  chosenImage: null, // its gallery thumbnail (none for an upload)
  blendA: null,
  blendB: null,
  updates: 0,        // images shown so far
  latencies: [],     // ms from a control's input to its new image on screen
  serverMs: [],      // the server's part of each: decoding and PNG encoding
  currentBlob: null,
};
window.explorer = state;  // for tests and for a look from the browser's console

function message(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

async function request(path, options) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

function postJSON(path, value) {
  return request(path, {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify(value)});
}

// Runs `fn` on the newest arguments only: calls made while one is at work replace
// each other, so a dragged slider never queues up stale requests.
function latestOnly(fn) {
  let pending = null, busy = false;
  return (...args) => {
    pending = args;
    if (busy) return;
    busy = true;
    (async () => {
      while (pending) {
        const next = pending;
        pending = null;
        try { await fn(...next); } catch (e) { message(e.message); }
      }
      busy = false;
    })();
  };
}

// -- the current code and its image ---------------------------------------------
function currentCode() {
  const z = state.base.slice();
  const add = (vector, amount) => { for (let i = 0; i < z.length; i++) z[i] += amount * vector[i]; };
  state.info.directions.forEach((d, k) => add(d.vector, state.directions[k]));
  state.info.attributes.forEach((a, k) => add(a.vector, state.attributes[k]));
  return z;
}

const showCode = latestOnly(async (code, started) => {
  const response = await postJSON("/api/decode", {z: code});
  const timing = /dur=([0-9.]+)/.exec(response.headers.get("Server-Timing") || "");
  const blob = await response.blob();
  const image = $("current");
  const old = image.src;
  image.src = URL.createObjectURL(blob);
  await image.decode();
  const ms = performance.now() - started;
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  state.code = code;
  state.currentBlob = blob;
  state.updates += 1;
  state.latencies.push(ms);
  state.serverMs.push(timing ? +timing[1] : NaN);
  image.dataset.updates = String(state.updates);
  $("download").href = image.src;
  const recent = state.latencies.slice(-20).sort((a, b) => a - b);
  $("latency").textContent = `update: ${ms.toFixed(0)} ms, of which the model ` +
    `${timing ? (+timing[1]).toFixed(0) : "?"} ms (median of the last ${recent.length}: ` +
    `${recent[Math.floor(recent.length / 2)].toFixed(0)} ms)`;
  const norm = Math.sqrt(code.reduce((s, v) => s + v * v, 0));
  $("code-summary").textContent = `code: ${code.length} numbers, |z| = ${norm.toFixed(2)}`;
});

function update() {
  showCode(currentCode(), performance.now());
}

function resetSliders() {
  state.directions.fill(0);
  state.attributes.fill(0);
  document.querySelectorAll(".slider input").forEach((input) => {
    input.value = "0";
    input.dispatchEvent(new Event("change"));
  });
}

function highlight(image) {
  document.querySelectorAll(".grid img.chosen").forEach((other) => other.classList.remove("chosen"));
  if (image) image.classList.add("chosen");
}

function setBase(code, image = null) {
  highlight(image);
  state.base = code.slice();
  resetSliders();
  update();
}

function slider(container, name, note, min, max, step, onInput) {
  const row = document.createElement("label");
  row.className = "slider";
  const title = document.createElement("span");
  title.textContent = name;
  const small = document.createElement("small");
  small.textContent = note;
  title.appendChild(small);
  const input = document.createElement("input");
  Object.assign(input, {type: "range", min, max, step, value: 0});
  input.dataset.name = name;
  const output = document.createElement("output");
  const show = () => { output.textContent = (+input.value).toFixed(2); };
  input.addEventListener("input", () => { show(); onInput(+input.value); });
  input.addEventListener("change", show);
  show();
  row.append(title, input, output);
  container.appendChild(row);
}

// -- the panels -----------------------------------------------------------------
function buildSliders(info) {
  $("direction-source").textContent =
    `Along ${info.direction_source}; one unit is one standard deviation of the codes along it.`;
  info.directions.forEach((d, k) => {
    state.directions.push(0);
    slider($("directions"), d.name, d.label, -3, 3, 0.05, (v) => { state.directions[k] = v; update(); });
  });
  $("attribute-note").textContent = info.attributes.length
    ? `Each vector: ${info.attribute_note}.` : `No attribute vectors: ${info.attribute_note}`;
  info.attributes.forEach((a, k) => {
    state.attributes.push(0);
    slider($("attributes"), a.name, `${a.count} with`, -2, 2, 0.05, (v) => { state.attributes[k] = v; update(); });
  });
}

const drawSamples = latestOnly(async () => {
  const seed = Math.max(0, Math.floor(+$("seed").value || 0));
  const temperature = +$("temperature").value;
  $("temperature-value").textContent = temperature.toFixed(2);
  const result = await (await postJSON("/api/sample", {seed, temperature})).json();
  state.samples = result.codes;
  const grid = $("samples");
  grid.replaceChildren(...result.images.map((src, i) => {
    const image = new Image();
    image.src = src;
    image.alt = `sample ${i}`;
    image.dataset.index = String(i);
    image.addEventListener("click", () => setBase(state.samples[i], image));
    return image;
  }));
});

function choose(item, image = null) {
  state.chosen = item;
  state.chosenImage = image;
  $("chosen-image").src = item.image;
  $("chosen-reconstruction").src = item.reconstruction;
}

async function upload(file) {
  const limit = state.info.upload_limit_bytes;
  if (file.size > limit) {
    message(`That file is ${(file.size / 2 ** 20).toFixed(1)} MB; the explorer takes images ` +
            `up to ${limit / 2 ** 20} MB.`);
    return;
  }
  try {
    const response = await request("/api/upload", {
      method: "POST", headers: {"Content-Type": "application/octet-stream"}, body: file});
    choose(await response.json());
    message("");
  } catch (e) {
    message(e.message);
  }
}

async function setBlendEnd(which, code) {
  state[which === "a" ? "blendA" : "blendB"] = code.slice();
  const blob = await (await postJSON("/api/decode", {z: code})).blob();
  const image = $(`blend-${which}`);
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(blob);
}

function blendTo(t) {
  $("blend-value").textContent = t.toFixed(2);
  setBase(state.blendA.map((a, i) => (1 - t) * a + t * state.blendB[i]));
}

async function start() {
  const info = await (await request("/api/info")).json();
  state.info = info;
  const [h, w, c] = info.image_shape;
  $("about").textContent = `${info.run}: ${info.dataset}, ${h}x${w}x${c} images, ` +
    `${info.latent_dim} latent dimensions` +
    (info.hierarchical ? " (the top group: decoding puts the groups below it at " +
      (info.sample_prior === "fitted" ? "the fitted Gaussian's mean given it)" : "their prior means)") : "") +
    `; samples from the ${info.sample_prior} sampling prior.`;
  buildSliders(info);

  const gallery = (await (await request("/api/gallery")).json()).items;
  $("gallery").replaceChildren(...gallery.map((item, i) => {
    const image = new Image();
    image.src = item.image;
    image.alt = `test image ${i}`;
    image.dataset.index = String(i);
    image.addEventListener("click", () => choose(item, image));
    return image;
  }));
  choose(gallery[0], $("gallery").firstChild);
  setBase(gallery[0].code, $("gallery").firstChild);
  await setBlendEnd("a", gallery[0].code);
  await setBlendEnd("b", gallery[Math.min(1, gallery.length - 1)].code);

  $("temperature").value = String(Math.min(info.temperature, 1.5));
  $("temperature").addEventListener("input", () => drawSamples());
  $("seed").addEventListener("change", () => drawSamples());
  $("new-seed").addEventListener("click", () => {
    $("seed").value = String(Math.floor(+$("seed").value || 0) + 1);
    drawSamples();
  });
  $("reset-sliders").addEventListener("click", () => { resetSliders(); update(); });
  $("use-image").addEventListener("click", () => setBase(state.chosen.code, state.chosenImage));
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    $("upload").value = "";
    if (file) upload(file);
  });
  $("set-a").addEventListener("click", () => setBlendEnd("a", state.code).catch((e) => message(e.message)));
  $("set-b").addEventListener("click", () => setBlendEnd("b", state.code).catch((e) => message(e.message)));
  $("blend").addEventListener("input", () => blendTo(+$("blend").value));
  drawSamples();
  document.body.dataset.ready = "true";
}

start().catch((e) => message(`The explorer could not start: ${e.message}`));
