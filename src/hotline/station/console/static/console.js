// hotline console: live updates over server-sent events, alarms with sound.
// Message text is an adversary's input: it only ever goes into textContent.
"use strict";

const body = document.body;
const page = body.dataset.page;
const seenAlarms = new Set();
let firstLoad = true;
window.hotlineBeeps = 0;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function beep(level) {
  window.hotlineBeeps += 1;
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = level >= 3 ? 880 : 660;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.6);
  } catch (e) { /* no audio device: the banner still shows */ }
}

function csrf() {
  const meta = document.querySelector('meta[name="csrf"]');
  return meta ? meta.content : "";
}

function renderAlarms(alarms) {
  const banner = document.getElementById("alarm-banner");
  if (!banner) return;
  banner.replaceChildren();
  const loud = alarms.filter((a) => ["flash", "overdue", "party-down", "fork", "verification", "unreadable-entry"].includes(a.kind));
  banner.classList.toggle("hidden", loud.length === 0);
  for (const a of loud.slice(0, 5)) {
    const line = el("div", null, "alarm level-" + a.level + " kind-" + a.kind);
    line.append(el("strong", a.title + ": "), el("span", a.message));
    if (a.channel !== null && a.index !== null && a.kind !== "party-down") {
      const link = el("a", " →");
      link.href = "/message/" + encodeURIComponent(a.channel) + "/" + a.index;
      line.append(link);
    }
    banner.append(line);
  }
  for (const a of alarms) {
    if (!seenAlarms.has(a.id)) {
      seenAlarms.add(a.id);
      if (!firstLoad && (a.kind === "flash" || a.kind === "overdue")) beep(a.level);
    }
  }
}

function renderRelay(relay) {
  const span = document.getElementById("relay-state");
  if (span) {
    span.textContent = relay.connected ? "● relay" : "○ relay";
    span.className = "relay " + (relay.connected ? "up" : "down");
  }
}

function renderInbox(items) {
  const tbody = document.querySelector("#inbox tbody");
  const labels = document.getElementById("labels").dataset;
  tbody.replaceChildren();
  document.getElementById("empty").classList.toggle("hidden", items.length > 0);
  for (const m of items) {
    const tr = el("tr", null, "prec-" + m.precedence + (m.read_ms ? "" : " unread") + (m.overdue ? " overdue" : ""));
    tr.append(el("td", m.precedence_label, "prec"));
    tr.append(el("td", m.channel + " #" + m.index));
    tr.append(el("td", m.sender));
    tr.append(el("td", m.relay_time));
    const subject = el("td");
    const link = el("a", m.view.kind === "form" ? m.view.title : m.summary);
    link.href = "/message/" + encodeURIComponent(m.channel) + "/" + m.index;
    subject.append(link);
    tr.append(subject);
    const marks = [];
    if (!m.read_ms) marks.push(labels.unread);
    if (m.overdue) marks.push(labels.overdue);
    if (m.acknowledged) marks.push(labels.acknowledged);
    tr.append(el("td", marks.join(" · "), "marks"));
    tbody.append(tr);
  }
}

function renderParties(recipients) {
  const tbody = document.querySelector("#parties tbody");
  if (!tbody) return;
  tbody.replaceChildren();
  for (const [party, st] of Object.entries(recipients)) {
    const tr = el("tr", null, st.overdue ? "overdue" : "");
    tr.dataset.party = party;
    tr.append(el("td", party), el("td", st.delivered_label, "delivered"), el("td", st.acknowledged_label, "acknowledged"));
    tbody.append(tr);
  }
}

function linkRow(channel, party, l, relay) {
  // One party's link (relay null), or its path through one relay (a row beneath it).
  const tr = el("tr", null, "link-" + l.state + (relay ? " path" : ""));
  tr.dataset.party = party;
  if (relay) tr.dataset.relay = relay;
  tr.append(el("td", relay ? "" : channel), el("td", relay ? l.via : party, relay ? "via" : null),
    el("td", l.label, "state"), el("td", l.contact),
    el("td", l.rtt_ms === null ? "-" : l.rtt_ms.toFixed(0) + " ms"), el("td", l.missed));
  const cell = el("td");
  const link = el("a", document.getElementById("handle-label").dataset.history);
  link.href = "#history-" + channel + "-" + party + (relay ? "-via-" + relay : "");
  link.className = "history-link";
  cell.append(link);
  tr.append(cell);
  return tr;
}

function renderLinks(state) {
  const relay = state.relay;
  const relays = Object.entries(state.relays || {});
  document.getElementById("relay-line").textContent = relays.length
    ? relays.map(([name, r]) => (r.connected ? "● " : "○ ") + name + " " + r.url).join("  ")
    : (relay.connected ? "● " : "○ ") + relay.url;
  const tbody = document.querySelector("#links tbody");
  tbody.replaceChildren();
  for (const [channel, parties] of Object.entries(state.links)) {
    for (const [party, l] of Object.entries(parties)) {
      tbody.append(linkRow(channel, party, l, null));
      for (const [name, path] of Object.entries(l.paths || {})) {
        tbody.append(linkRow(channel, party, path, name));
      }
    }
  }
  const list = document.getElementById("alarm-list");
  const handle = document.getElementById("handle-label").dataset.text;
  list.replaceChildren();
  document.getElementById("no-alarms").classList.toggle("hidden", state.alarms.length > 0);
  for (const a of state.alarms) {
    const li = el("li", null, "alarm level-" + a.level + " kind-" + a.kind);
    li.append(el("strong", a.title), el("span", " " + a.time + " — "), el("span", a.message));
    if (a.count > 1) li.append(el("span", " ×" + a.count + " · " + a.last, "count"));
    const form = el("form");
    form.method = "post";
    form.action = "/alarms/" + a.id + "/clear";
    const token = el("input");
    token.type = "hidden"; token.name = "csrf"; token.value = csrf();
    form.append(token, el("button", handle));
    li.append(form);
    list.append(li);
  }
}

async function refresh() {
  const params = new URLSearchParams();
  if (page === "inbox" && body.dataset.channel) params.set("channel", body.dataset.channel);
  if (page === "sent") { params.set("sent_channel", body.dataset.channel); params.set("sent_seq", body.dataset.seq); }
  if (page === "message") { params.set("msg_channel", body.dataset.channel); params.set("msg_index", body.dataset.index); }
  const response = await fetch("/console/state.json?" + params, { credentials: "same-origin" });
  if (response.status === 401) { window.location = "/login"; return; }
  const state = await response.json();
  renderRelay(state.relay);
  renderAlarms(state.alarms);
  if (page === "inbox") renderInbox(state.inbox);
  if (page === "links") renderLinks(state);
  if (page === "message" && state.message) renderParties(state.message.recipients);
  if (page === "sent" && state.sent) {
    document.getElementById("sent-state").textContent = state.sent.state_label;
    document.getElementById("sent-state").dataset.state = state.sent.state;
    document.getElementById("sent-index").textContent = state.sent.index === null ? "" : "#" + state.sent.index;
    renderParties(state.sent.recipients);
  }
  body.dataset.version = state.version;
  firstLoad = false;
}

if (page) {
  refresh();
  const events = new EventSource("/console/events");
  events.addEventListener("change", () => refresh());
}

// --- maps (Leaflet, vendored; no tiles: borders and coastlines from region.geojson) ---
// Every place a page shows is kept in window.hotlineLayers by its key, so tests (and a
// curious operator's console) can read back where the map drew it.
window.hotlineLayers = {};

function newMap(node) {
  if (!window.L) return null;
  const map = L.map(node, { attributionControl: false, minZoom: 3, maxZoom: 15, zoomSnap: 0.25 });
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  map.setView([48.5, 34.0], 5);
  fetch(node.dataset.region, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((geo) => {
      // Borders over land, both under the places (which may already be drawn).
      const part = (name) => (f) => f.properties.layer === name;
      L.geoJSON(geo, { interactive: false, filter: part("borders"), style: { color: "#5b6b7b", weight: 1, fill: false } })
        .addTo(map).bringToBack();
      L.geoJSON(geo, { interactive: false, filter: part("land"), style: { stroke: false, fillColor: "#f4f1e8", fillOpacity: 1 } })
        .addTo(map).bringToBack();
      // The sea within the region the data covers; outside it the map stays grey (no data).
      const [w, s, e, n] = geo.features[0].properties.region;
      L.rectangle([[s, w], [n, e]], { interactive: false, stroke: false, fillColor: "#c9dcec", fillOpacity: 1 })
        .addTo(map).bringToBack();
      node.dataset.borders = "loaded";
    });
  window.hotlineMap = map;
  return map;
}

function placeLayer(p) {
  const style = { color: p.kind === "notice" ? "#c1121f" : "#1d4ed8", weight: 2, fillOpacity: 0.2 };
  if (p.polygon) return L.polygon(p.polygon, style);
  if (p.radius_m !== null) return L.circle([p.lat, p.lon], Object.assign({ radius: p.radius_m }, style));
  return L.circleMarker([p.lat, p.lon], Object.assign({ radius: 7 }, style));
}

function placeBounds(layer) {
  return layer.getBounds ? layer.getBounds() : L.latLngBounds([layer.getLatLng(), layer.getLatLng()]);
}

function drawPlaces(node) {
  const map = newMap(node);
  if (!map) return;
  const places = JSON.parse(node.dataset.places || "[]");
  const all = L.latLngBounds([]);
  for (const p of places) {
    const layer = placeLayer(p).addTo(map);
    const pop = el("div");
    const link = el("a", p.title + " · " + p.channel + " #" + p.index);
    link.href = p.href;
    pop.append(link, el("div", p.degrees), el("div", "MGRS " + p.mgrs), el("div", p.radius), el("div", p.period), el("div", p.ack_text));
    layer.bindPopup(pop);
    window.hotlineLayers[p.key] = layer;
    all.extend(placeBounds(layer));
  }
  if (all.isValid()) map.fitBounds(all.pad(places.length > 1 ? 0.6 : 2), { maxZoom: 11, animate: false });
  for (const li of document.querySelectorAll(".place-list li[data-key]")) {
    li.addEventListener("click", (event) => {
      const layer = window.hotlineLayers[li.dataset.key];
      if (!layer || event.target.tagName === "A") return;
      map.fitBounds(placeBounds(layer).pad(2), { maxZoom: 12 });
      layer.openPopup();
    });
  }
  node.dataset.ready = "1";
}

function pickMap(node) {
  const map = newMap(node);
  if (!map) return;
  const lat = document.querySelector('input[name="' + node.dataset.field + '.lat"]');
  const lon = document.querySelector('input[name="' + node.dataset.field + '.lon"]');
  const radius = document.querySelector('input[name="' + node.dataset.field + '.radius_km"]');
  let layer = null;
  function show() {
    const a = parseFloat((lat.value || "").replace(",", "."));
    const b = parseFloat((lon.value || "").replace(",", "."));
    if (layer) { layer.remove(); layer = null; }
    if (!isFinite(a) || !isFinite(b) || Math.abs(a) > 90 || Math.abs(b) > 180) return;
    const r = radius ? parseFloat((radius.value || "").replace(",", ".")) : NaN;
    layer = isFinite(r) && r > 0
      ? L.circle([a, b], { radius: r * 1000, color: "#c1121f", weight: 2 })
      : L.circleMarker([a, b], { radius: 7, color: "#c1121f", weight: 2 });
    layer.addTo(map);
    window.hotlineLayers.picked = layer;
  }
  map.on("click", (event) => {
    lat.value = event.latlng.lat.toFixed(5);
    lon.value = L.Util.wrapNum(event.latlng.lng, [-180, 180], true).toFixed(5);
    show();
  });
  for (const input of [lat, lon, radius]) if (input) input.addEventListener("input", show);
  show();
  node.dataset.ready = "1";
}

for (const node of document.querySelectorAll("#map[data-places]")) drawPlaces(node);
for (const node of document.querySelectorAll(".pick-map")) pickMap(node);

const printButton = document.getElementById("print-now");
if (printButton) printButton.addEventListener("click", () => window.print());
