// The tour viewer: loads a published scene through the service's API (docs/scenes.md) and
// shows it in CesiumJS — layers per epoch, overlays, camera flights between the tour's stops,
// narration, autoplay, deep links, free roaming, picking — with every control usable by
// keyboard and the narration in a live region.
//
// No Ion, no imagery, no terrain provider, no globe: the scene's own terrain layer is the
// ground, and nothing is requested from any origin but this service (the page's
// Content-Security-Policy enforces it as well).
//
// window.viewerState reports what the page does, for people debugging and for the browser
// tests: status ("loading" | "ready" | "failed"), stop, settled (the current view is still
// and all its tiles are loaded), epoch, lang, playing, roaming, layers, errors, timings.
// window.tour gives scripts the viewer and a few helpers (screenRect of a layer).

import * as Cesium from "/cesium/index.js";
import { OverlayLayer, statusColour } from "./overlays.js";
import { describeBuilding, describeOverlay } from "./info.js";
import { attachKeyboardCamera } from "./keyboard.js";

const SKY = [190, 214, 234]; // keep in sync with --sky in static/css/site.css
const SUN_TIME = "2024-06-21T10:00:00Z"; // a fixed June morning: the same light on every visit
const SETTLE_FRAMES = 4;
const SETTLE_MS = 400;
const MAXIMUM_SCREEN_SPACE_ERROR = 16;
const CLICK_TOLERANCE_PX = 5; // ScreenSpaceEventHandler's: a press that moves less is a click
const HIGHLIGHT = Cesium.Color.fromCssColorString("#ffd23f");

const main = document.getElementById("main");
const $ = (id) => document.getElementById(id);
const strings = JSON.parse($("ui-strings").textContent);
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const state = {
  status: "loading",
  errors: [],
  scene: main.dataset.scene,
  stop: Number(main.dataset.stop),
  count: Number(main.dataset.count),
  lang: strings[document.documentElement.lang] ? document.documentElement.lang : "de",
  epoch: null,
  flying: false,
  settled: false,
  roaming: false,
  playing: false,
  tilesLoaded: false,
  layers: {},
  overlays: {},
  info: null,
  frames: 0,
  timings: { start: performance.now() },
  colors: { sky: SKY },
};
window.viewerState = state;
window.addEventListener("error", (event) => state.errors.push(`uncaught: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => state.errors.push(`unhandled: ${event.reason}`));

let detail = null;
let tour = null;
let viewer = null;
let overlays = null;
const layers = []; // {meta, on, tileset, loading}
let flight = 0; // id of the current camera flight; callbacks of older flights are ignored
let dwellTimer = null;
let gesture = null; // {x, y} where a pointer went down on the canvas, until it goes up
let selected = null; // {kind: "building", feature, properties, layerTitle} | {kind: "overlay", id}
let infoTrigger = null;

// ---- texts ----------------------------------------------------------------------------------

function t(key, params = {}) {
  let text = strings[state.lang]?.[key] ?? strings.de[key] ?? key;
  for (const [name, value] of Object.entries(params)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

function local(value) {
  if (value && typeof value === "object") return value[state.lang] || value.de || Object.values(value)[0] || "";
  return typeof value === "string" ? value : "";
}

function setStatus(key, stateName, params) {
  const status = $("view-status");
  status.textContent = t(key, params);
  status.dataset.state = stateName;
  status.dataset.key = key;
}

function fail(key, detailText) {
  state.status = "failed";
  state.errors.push(detailText ?? key);
  setStatus(key, "failed", { error: detailText ?? "" });
}

// ---- data -----------------------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function stopAt(number) {
  return tour.stops[number - 1];
}

function stopUrl(number) {
  const query = state.lang === "de" ? "" : `?lang=${state.lang}`;
  return `/tour/${encodeURIComponent(state.scene)}/${number}${query}`;
}

// ---- the stop panel -------------------------------------------------------------------------

function renderStop() {
  const stop = stopAt(state.stop);
  $("progress-text").textContent = t("progress", { number: state.stop, count: state.count });
  $("progress-fill").style.width = `${(100 * state.stop) / state.count}%`;
  $("stop-title").textContent = local(stop.title);
  $("stop-narration").textContent = local(stop.narration);
  document.title = `${local(stop.title)} – ${local(detail?.title) || $("scene-title").textContent} – ${t("site_title")}`;
  const other = state.lang === "de" ? "en" : "de";
  $("language-switch").href = `/tour/${encodeURIComponent(state.scene)}/${state.stop}?lang=${other}`;
  setDisabled($("previous-stop"), state.stop <= 1);
  setDisabled($("next-stop"), state.stop >= state.count);
  for (const link of $("stop-list").querySelectorAll("a[data-stop]")) {
    const number = Number(link.dataset.stop);
    if (number === state.stop) link.setAttribute("aria-current", "step");
    else link.removeAttribute("aria-current");
  }
}

// aria-disabled rather than disabled: the button keeps its focus (and stays in the tab order)
// when the tour reaches its first or last stop.
function setDisabled(button, disabled) {
  button.setAttribute("aria-disabled", disabled ? "true" : "false");
}

function renderStopList() {
  const list = $("stop-list");
  list.replaceChildren(
    ...tour.stops.map((stop, index) => {
      const number = stop.number ?? index + 1;
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = stopUrl(number);
      link.dataset.stop = String(number);
      link.textContent = local(stop.title);
      item.append(link);
      return item;
    }),
  );
}

// The button's name says what it does now (play or pause); its state is not also announced
// as "pressed", which would say the same thing twice.
function updatePlayButton() {
  const button = $("play");
  button.dataset.playing = state.playing ? "true" : "false";
  $("play-text").textContent = t(state.playing ? "pause" : "play");
  $("play-hint").textContent = t(state.playing ? "pause_hint" : "play_hint");
  button.querySelector(".play-icon").textContent = state.playing ? "❚❚" : "▶";
}

// ---- stops, flights, autoplay ---------------------------------------------------------------

function showStop(number, { how = "fly", history = "push" } = {}) {
  if (!tour || number < 1 || number > state.count) return;
  state.stop = number;
  renderStop();
  if (history === "push") window.history.pushState({ stop: number }, "", stopUrl(number));
  else if (history === "replace") window.history.replaceState({ stop: number }, "", stopUrl(number));
  const stop = stopAt(number);
  setEpoch(stop.epoch || detail.default_epoch);
  overlays?.setHighlight(stop.highlight ?? []);
  state.highlighted = [...(overlays?.highlighted ?? [])];
  flyToStop(stop, how);
}

function flyToStop(stop, how) {
  leaveRoaming();
  clearTimeout(dwellTimer);
  state.settled = false;
  state.arrived = false;
  if (!viewer) {
    arrived();
    return;
  }
  const camera = viewer.scene.camera;
  const c = stop.camera;
  const destination = Cesium.Cartesian3.fromDegrees(c.longitude, c.latitude, c.height);
  const orientation = {
    heading: Cesium.Math.toRadians(c.heading ?? 0),
    pitch: Cesium.Math.toRadians(c.pitch ?? -30),
    roll: Cesium.Math.toRadians(c.roll ?? 0),
  };
  camera.frustum.fov = Cesium.Math.toRadians(c.fov ?? 60);
  const id = ++flight;
  camera.cancelFlight();
  stopInertia();
  if (how === "jump" || reducedMotion.matches) {
    state.flying = false;
    camera.setView({ destination, orientation });
    arrived();
  } else {
    // Short hops stay low: the arc rises by a third of the distance above the higher end.
    const distance = Cesium.Cartesian3.distance(camera.positionWC, destination);
    const start = camera.positionCartographic.height;
    state.flying = true;
    camera.flyTo({
      destination,
      orientation,
      duration: Math.min(Math.max(1 + distance / 700, 1.5), 4),
      maximumHeight: Math.max(start, c.height) + Math.min(distance / 3, 1500),
      complete: () => {
        if (id !== flight) return;
        state.flying = false;
        arrived();
      },
      cancel: () => {
        if (id === flight) state.flying = false;
      },
    });
  }
  wake();
}

// A drag that ended just before keeps the camera gliding for a second or two (CesiumJS's
// inertia), which would carry it away from the stop again. CesiumJS keeps each gesture's
// inertia in a private "_lastInertia…Movement" state (pinned version); switching those off
// ends the glide; the next gesture switches its own on again.
function stopInertia() {
  const controller = viewer.scene.screenSpaceCameraController;
  for (const name of Object.keys(controller)) {
    if (name.startsWith("_lastInertia") && controller[name]) controller[name].inertiaEnabled = false;
  }
}

function arrived() {
  state.arrived = true;
  state.timings[`arrived${state.stop}`] = performance.now();
  scheduleNext();
}

function scheduleNext() {
  clearTimeout(dwellTimer);
  if (!state.playing || state.roaming || !state.arrived) return;
  const dwell = Number(stopAt(state.stop).dwell ?? 12) * 1000;
  dwellTimer = setTimeout(() => {
    if (state.stop < state.count) showStop(state.stop + 1, { history: "replace" });
    else setPlaying(false);
  }, dwell);
}

function setPlaying(on) {
  state.playing = on;
  updatePlayButton();
  $("autoplay-status").textContent = t(on ? "autoplay_on" : "autoplay_off");
  clearTimeout(dwellTimer);
  if (!on) return;
  if (state.roaming) backToTour();
  else if (state.stop >= state.count && state.arrived) showStop(1, { history: "replace" });
  else scheduleNext();
}

function next() {
  if (state.stop < state.count) showStop(state.stop + 1);
}

function previous() {
  if (state.stop > 1) showStop(state.stop - 1);
}

// ---- free roaming -----------------------------------------------------------------------------

function enterRoaming() {
  if (state.roaming) return;
  state.roaming = true;
  $("back-to-tour").hidden = false;
  $("roaming-note").hidden = false;
  if (state.playing) setPlaying(false);
}

function leaveRoaming() {
  state.roaming = false;
  $("back-to-tour").hidden = true;
  $("roaming-note").hidden = true;
}

function backToTour() {
  const focusWasOnButton = document.activeElement === $("back-to-tour");
  flyToStop(stopAt(state.stop), "fly");
  if (focusWasOnButton) $("stop-panel").focus();
}

// ---- epochs and layers ----------------------------------------------------------------------

function setEpoch(id) {
  const known = detail.epochs.map((epoch) => epoch.id);
  state.epoch = known.includes(id) ? id : detail.default_epoch || known[0];
  for (const input of document.querySelectorAll("input[name=epoch]")) {
    input.checked = input.value === state.epoch;
  }
  applyLayers();
}

function layerInEpoch(layer) {
  return (layer.meta.epochs ?? []).includes(state.epoch);
}

function tilesetOptions(meta) {
  const options = { maximumScreenSpaceError: MAXIMUM_SCREEN_SPACE_ERROR };
  if (meta.kind === "points") {
    options.pointCloudShading = { attenuation: true, maximumAttenuation: 3 };
  }
  return options;
}

function loadLayer(layer) {
  if (!layer.loading) {
    layer.loading = Cesium.Cesium3DTileset.fromUrl(layer.meta.tileset_url, tilesetOptions(layer.meta))
      .then((tileset) => {
        tileset.tileFailed.addEventListener((event) => {
          state.errors.push(`tile failed: ${event.url}: ${event.message}`);
        });
        tileset.tileLoad.addEventListener(() => viewer.scene.requestRender());
        viewer.scene.primitives.add(tileset);
        layer.tileset = tileset;
        tileset.show = layer.on && layerInEpoch(layer);
        wake();
        return tileset;
      })
      .catch((error) => {
        state.errors.push(`layer ${layer.meta.id}: ${error}`);
        layer.failed = true;
      });
  }
  return layer.loading;
}

function applyLayers() {
  for (const layer of layers) {
    const shown = layer.on && layerInEpoch(layer);
    if (viewer) {
      if (layer.tileset) layer.tileset.show = shown;
      else if (shown) loadLayer(layer);
    }
    state.layers[layer.meta.id] = shown;
    const input = $(`layer-${layer.meta.id}`);
    if (input) {
      input.checked = layer.on;
      input.disabled = !layerInEpoch(layer);
    }
  }
  if (selected?.kind === "building" && !selected.layer?.tileset?.show) hideInfo();
  wake();
}

function shownTilesets() {
  return layers.filter((layer) => state.layers[layer.meta.id]);
}

// ---- view options (epochs, layers, overlays) ------------------------------------------------

function option(type, id, name, labelText) {
  const row = document.createElement("div");
  row.className = "option";
  const input = document.createElement("input");
  input.type = type;
  input.id = id;
  input.name = name;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = labelText;
  row.append(input, label);
  return { row, input, label };
}

function buildViewOptions() {
  const epochs = $("epoch-options");
  epochs.querySelectorAll(".option").forEach((row) => row.remove());
  for (const epoch of detail.epochs) {
    const { row, input, label } = option("radio", `epoch-${epoch.id}`, "epoch", local(epoch.title));
    input.value = epoch.id;
    label.dataset.epoch = epoch.id;
    input.addEventListener("change", () => {
      if (input.checked) setEpoch(epoch.id);
    });
    epochs.append(row);
  }
  epochs.hidden = detail.epochs.length < 2;

  const layerBox = $("layer-options");
  layerBox.querySelectorAll(".option").forEach((row) => row.remove());
  for (const layer of layers) {
    const { row, input, label } = option("checkbox", `layer-${layer.meta.id}`, "layer", local(layer.meta.title));
    label.dataset.layer = layer.meta.id;
    const note = document.createElement("span");
    note.className = "note";
    note.id = `layer-${layer.meta.id}-note`;
    row.append(note);
    input.setAttribute("aria-describedby", note.id);
    input.addEventListener("change", () => {
      layer.on = input.checked;
      applyLayers();
    });
    layerBox.append(row);
  }
  layerBox.hidden = layers.length === 0;
  renderLayerNotes();

  const overlayBox = $("overlay-options");
  overlayBox.querySelectorAll(".option").forEach((row) => row.remove());
  for (const id of overlays?.ids ?? []) {
    const { row, input, label } = option("checkbox", `overlay-${id}`, "overlay", overlays.name(id, state.lang));
    input.checked = true;
    label.dataset.overlay = id;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.setAttribute("aria-hidden", "true");
    swatch.style.background = statusColour(overlays.feature(id).properties);
    row.insertBefore(swatch, label);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button button-small";
    button.dataset.overlayInfo = id;
    button.textContent = t("overlay_info");
    button.setAttribute("aria-label", t("overlay_info_label", { name: overlays.name(id, state.lang) }));
    button.addEventListener("click", () => {
      infoTrigger = button;
      selectOverlay(id, { focus: true });
    });
    row.append(button);
    input.addEventListener("change", () => {
      overlays.setShown(id, input.checked);
      state.overlays[id] = input.checked;
      wake();
    });
    state.overlays[id] = true;
    overlayBox.append(row);
  }
  overlayBox.hidden = !overlays || overlays.ids.length === 0;
}

function renderLayerNotes() {
  const epochTitle = (id) => local(detail.epochs.find((epoch) => epoch.id === id)?.title) || id;
  for (const layer of layers) {
    const note = $(`layer-${layer.meta.id}-note`);
    const epochs = layer.meta.epochs ?? [];
    const all = detail.epochs.every((epoch) => epochs.includes(epoch.id));
    if (note) note.textContent = all ? "" : `(${epochs.map(epochTitle).join(", ")})`;
  }
}

// ---- the info panel -------------------------------------------------------------------------

function definitionList(list, rows) {
  for (const [label, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = label;
    const description = document.createElement("dd");
    if (/^https?:\/\/\S+$/.test(value)) {
      const link = document.createElement("a");
      link.href = value;
      link.rel = "noopener noreferrer";
      link.textContent = value;
      description.append(link);
    } else {
      description.textContent = value;
    }
    list.append(term, description);
  }
}

function showInfo({ title, kind, rows, more = [] }, { focus = false } = {}) {
  $("info-title").textContent = title;
  $("info-kind").textContent = kind;
  const list = $("info-list");
  list.replaceChildren();
  definitionList(list, rows);
  const details = $("info-more");
  details.hidden = more.length === 0;
  details.querySelector("summary").textContent = t("info_more");
  const moreList = $("info-more-list");
  moreList.replaceChildren();
  definitionList(moreList, more);
  const panel = $("info-panel");
  panel.hidden = false;
  state.info = { title, kind, rows, more };
  if (focus) panel.focus();
}

function hideInfo() {
  if (selected?.kind === "building") {
    try {
      selected.feature.color = Cesium.Color.WHITE;
    } catch {
      // the tile holding the feature was unloaded meanwhile
    }
  }
  selected = null;
  state.info = null;
  $("info-panel").hidden = true;
  viewer?.scene.requestRender();
}

function renderInfo(focus = false) {
  if (!selected) return;
  if (selected.kind === "building") {
    showInfo(describeBuilding(selected.properties, local(selected.layer?.meta.title), t, state.lang), { focus });
  } else if (selected.kind === "overlay") {
    showInfo(describeOverlay(overlays.feature(selected.id), t, state.lang), { focus });
  } else {
    showInfo({ title: t("info_heading"), kind: "", rows: [["", t("info_nothing")]] }, { focus });
  }
}

function selectBuilding(feature, { focus = false } = {}) {
  hideInfo();
  const properties = {};
  for (const name of feature.getPropertyIds()) properties[name] = feature.getProperty(name);
  const layer = layers.find((candidate) => candidate.tileset === feature.tileset);
  selected = { kind: "building", feature, properties, layer };
  feature.color = HIGHLIGHT;
  renderInfo(focus);
  viewer.scene.requestRender();
}

function selectOverlay(id, { focus = false } = {}) {
  hideInfo();
  selected = { kind: "overlay", id };
  renderInfo(focus);
}

function pickAt(position, { keyboard = false } = {}) {
  if (!viewer) return;
  const picked = viewer.scene.pick(position);
  if (picked instanceof Cesium.Cesium3DTileFeature) {
    selectBuilding(picked, { focus: keyboard });
  } else if (overlays?.pickedId(picked)) {
    selectOverlay(overlays.pickedId(picked), { focus: keyboard });
  } else if (keyboard) {
    hideInfo();
    selected = { kind: "nothing" };
    renderInfo(true);
  } else {
    hideInfo();
  }
}

function pickCentre(trigger) {
  const canvas = viewer?.scene.canvas;
  if (!canvas) return;
  infoTrigger = trigger;
  pickAt(new Cesium.Cartesian2(canvas.clientWidth / 2, canvas.clientHeight / 2), { keyboard: true });
}

// ---- language -------------------------------------------------------------------------------

function setLanguage(lang) {
  if (!strings[lang]) return;
  state.lang = lang;
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
  for (const element of document.querySelectorAll("[data-i18n-href]")) {
    element.href = `${element.dataset.i18nHref}${lang === "de" ? "" : `?lang=${lang}`}`;
  }
  const other = lang === "de" ? "en" : "de";
  const switcher = $("language-switch");
  switcher.textContent = t("switch_language");
  switcher.setAttribute("aria-label", t("switch_language_label"));
  switcher.lang = other;
  switcher.hreflang = other;
  if (tour) {
    $("scene-title").textContent = local(detail.title);
    $("tour-title").textContent = local(tour.title);
    renderStopList();
    renderStop();
    for (const label of document.querySelectorAll("label[data-epoch]")) {
      label.textContent = local(detail.epochs.find((epoch) => epoch.id === label.dataset.epoch)?.title);
    }
    for (const label of document.querySelectorAll("label[data-layer]")) {
      label.textContent = local(layers.find((layer) => layer.meta.id === label.dataset.layer)?.meta.title);
    }
    renderLayerNotes();
  }
  if (overlays) {
    overlays.setLanguage(lang);
    for (const label of document.querySelectorAll("label[data-overlay]")) {
      label.textContent = overlays.name(label.dataset.overlay, lang);
    }
    for (const button of document.querySelectorAll("button[data-overlay-info]")) {
      button.textContent = t("overlay_info");
      button.setAttribute("aria-label", t("overlay_info_label", { name: overlays.name(button.dataset.overlayInfo, lang) }));
    }
  }
  updatePlayButton();
  const status = $("view-status");
  if (status.dataset.key) status.textContent = t(status.dataset.key, { error: state.errors.at(-1) ?? "" });
  if (viewer) viewer.canvas.setAttribute("aria-label", t("canvas_label"));
  renderInfo(false);
  if (!tour) switcher.href = `${window.location.pathname}?lang=${other}`;
  window.history.replaceState(window.history.state, "", tour ? stopUrl(state.stop) : `${window.location.pathname}${lang === "de" ? "" : `?lang=${lang}`}`);
  viewer?.scene.requestRender();
}

// ---- controls -------------------------------------------------------------------------------

function isTyping(target) {
  return target instanceof HTMLElement &&
    (target.matches("input, select, textarea, [contenteditable], canvas") || target.isContentEditable);
}

function bindControls() {
  $("next-stop").addEventListener("click", next);
  $("previous-stop").addEventListener("click", previous);
  $("play").addEventListener("click", () => setPlaying(!state.playing));
  $("back-to-tour").addEventListener("click", backToTour);
  $("pick-centre").addEventListener("click", (event) => pickCentre(event.currentTarget));
  $("info-close").addEventListener("click", () => {
    hideInfo();
    (infoTrigger && document.contains(infoTrigger) ? infoTrigger : $("stop-panel")).focus();
  });
  $("info-panel").addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("info-close").click();
  });
  $("language-switch").addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    setLanguage(state.lang === "de" ? "en" : "de");
  });
  $("stop-list").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-stop]");
    if (!link || !tour || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    showStop(Number(link.dataset.stop));
  });
  // Arrow keys step through the tour wherever focus is, except where they already mean
  // something (form controls, the 3D view).
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Escape" && state.roaming) {
      backToTour();
      return;
    }
    if (isTyping(event.target)) return;
    if (event.key === "ArrowRight") {
      event.preventDefault();
      next();
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      previous();
    }
  });
  window.addEventListener("popstate", () => {
    const number = Number(window.location.pathname.split("/")[3] || 1);
    if (tour && number >= 1 && number <= state.count && number !== state.stop) {
      showStop(number, { history: "none" });
    }
  });
  reducedMotion.addEventListener?.("change", () => {
    state.reducedMotion = reducedMotion.matches;
  });
  state.reducedMotion = reducedMotion.matches;
}

// ---- CesiumJS -------------------------------------------------------------------------------

function createViewer() {
  Cesium.Ion.defaultAccessToken = "";
  Cesium.buildModuleUrl.setBaseUrl("/cesium/");
  // A text credit instead of CesiumJS's logo image; the page lists its credits itself.
  Cesium.CreditDisplay.cesiumCredit = new Cesium.Credit("CesiumJS", false);
  const created = new Cesium.Viewer($("cesium"), {
    globe: false,
    baseLayer: false,
    baseLayerPicker: false,
    geocoder: false,
    homeButton: false,
    sceneModePicker: false,
    projectionPicker: false,
    navigationHelpButton: false,
    navigationInstructionsInitiallyVisible: false,
    animation: false,
    timeline: false,
    fullscreenButton: false,
    vrButton: false,
    infoBox: false,
    selectionIndicator: false,
    skyBox: false,
    skyAtmosphere: false,
    creditContainer: $("cesium-credits"),
    requestRenderMode: true,
    maximumRenderTimeChange: Number.POSITIVE_INFINITY,
    shouldAnimate: false,
    showRenderLoopErrors: false,
  });
  const scene = created.scene;
  scene.backgroundColor = Cesium.Color.fromBytes(...SKY, 255);
  if (softwareRendering(scene)) {
    // No GPU (a software rasteriser such as SwiftShader or llvmpipe): multisampling costs
    // more than it shows there.
    scene.msaaSamples = 1;
    state.softwareRendering = true;
  }
  created.clock.currentTime = Cesium.JulianDate.fromIso8601(SUN_TIME);
  created.clock.shouldAnimate = false;
  scene.renderError.addEventListener((_scene, error) => fail("load_failed", `render error: ${error}`));

  const canvas = scene.canvas;
  canvas.setAttribute("tabindex", "0");
  canvas.setAttribute("role", "application");
  canvas.setAttribute("aria-label", t("canvas_label"));
  canvas.addEventListener("focus", () => {
    $("crosshair").hidden = false;
  });
  canvas.addEventListener("blur", () => {
    $("crosshair").hidden = true;
  });
  // Free roaming starts with the user's own gesture — a drag beyond Cesium's click tolerance or
  // the wheel — never with a later frame noticing that the camera moved: on a software
  // rasteriser a frame can take seconds, and the tour's own camera moves must not count.
  const takeCamera = () => {
    if (state.flying) {
      scene.camera.cancelFlight();
      state.flying = false;
    }
  };
  canvas.addEventListener("pointerdown", (event) => {
    gesture = { x: event.clientX, y: event.clientY };
    takeCamera();
  }, { passive: true });
  canvas.addEventListener("pointermove", (event) => {
    if (!gesture || !event.buttons) return;
    if (Math.hypot(event.clientX - gesture.x, event.clientY - gesture.y) > CLICK_TOLERANCE_PX) {
      enterRoaming();
    }
  }, { passive: true });
  for (const type of ["pointerup", "pointercancel"]) {
    window.addEventListener(type, () => { gesture = null; }, { passive: true });
  }
  canvas.addEventListener("wheel", () => {
    takeCamera();
    enterRoaming();
  }, { passive: true });
  const handler = created.screenSpaceEventHandler;
  handler.removeInputAction(Cesium.ScreenSpaceEventType.LEFT_DOUBLE_CLICK);
  handler.setInputAction((click) => pickAt(click.position), Cesium.ScreenSpaceEventType.LEFT_CLICK);
  scene.camera.moveStart.addEventListener(() => {
    state.settled = false;
    wake();
  });
  attachKeyboardCamera(Cesium, created, canvas, {
    onMove: () => {
      if (state.flying) {
        scene.camera.cancelFlight();
        state.flying = false;
      }
      state.settled = false;
      enterRoaming();
    },
    onPickCentre: () => pickCentre(canvas),
  });
  return created;
}

function softwareRendering(scene) {
  try {
    const gl = scene.context._gl; // CesiumJS keeps its WebGL context private; pinned version
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    state.renderer = renderer;
    return /swiftshader|llvmpipe|softpipe|software/i.test(renderer);
  } catch {
    return false;
  }
}

// "Settled": the camera is still and every shown layer has all the tiles the view needs, for
// a few frames in a row. In request-render mode nothing renders while nothing changes, so
// until then the page asks for frames itself.
let lastPosition = null;
let lastDirection = null;
let stableFrames = 0;
let stableSince = 0;
let waking = null;

function wake() {
  state.settled = false;
  if (!viewer) return;
  viewer.scene.requestRender();
  if (waking === null) {
    waking = setInterval(() => {
      if (state.settled) {
        clearInterval(waking);
        waking = null;
      } else {
        viewer.scene.requestRender();
      }
    }, 100);
  }
}

function onFrame() {
  const now = performance.now();
  state.frames += 1;
  if (state.timings.firstFrame === undefined) state.timings.firstFrame = now;
  const camera = viewer.scene.camera;
  const still = lastPosition !== null &&
    Cesium.Cartesian3.equalsEpsilon(camera.positionWC, lastPosition, 0, 1e-6) &&
    Cesium.Cartesian3.equalsEpsilon(camera.directionWC, lastDirection, 1e-9);
  lastPosition = Cesium.Cartesian3.clone(camera.positionWC, lastPosition ?? undefined);
  lastDirection = Cesium.Cartesian3.clone(camera.directionWC, lastDirection ?? undefined);
  const shown = shownTilesets();
  const loaded = shown.every((layer) => layer.failed || (layer.tileset && layer.tileset.tilesLoaded));
  state.tilesLoaded = loaded;
  if (still && loaded && !state.flying) {
    if (stableFrames === 0) stableSince = now;
    stableFrames += 1;
  } else {
    stableFrames = 0;
  }
  if (!state.settled && stableFrames >= SETTLE_FRAMES && now - stableSince >= SETTLE_MS) {
    state.settled = true;
    state.settledStop = state.stop;
    state.timings[`settled${state.stop}`] = now;
    if (state.status === "loading") {
      state.status = "ready";
      state.timings.ready = now;
      setStatus("ready", "ready");
    }
  }
}

/** The window rectangle [x0, y0, x1, y1] (CSS pixels) of a layer's region, for scripts. */
function screenRect(layerId) {
  const meta = layers.find((layer) => layer.meta.id === layerId)?.meta;
  if (!meta || !viewer || meta.region?.length !== 6) return null;
  const [west, south, east, north, low, high] = meta.region;
  const xs = [];
  const ys = [];
  for (const lon of [west, east]) {
    for (const lat of [south, north]) {
      for (const height of [low, high]) {
        const position = Cesium.Cartesian3.fromDegrees(lon, lat, height); // region: degrees (docs/scenes.md)
        const window = Cesium.SceneTransforms.worldToWindowCoordinates(viewer.scene, position);
        if (window) {
          xs.push(window.x);
          ys.push(window.y);
        }
      }
    }
  }
  if (xs.length === 0) return null;
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

// ---- start ----------------------------------------------------------------------------------

async function start() {
  bindControls();
  updatePlayButton();
  try {
    detail = await fetchJson(main.dataset.detailUrl);
    [tour, overlays] = await Promise.all([
      fetchJson(detail.tour_url),
      fetchJson(detail.overlays_url).catch((error) => {
        state.errors.push(`overlays: ${error}`);
        return null;
      }),
    ]);
  } catch (error) {
    fail("load_failed", String(error));
    return;
  }
  state.count = tour.stops.length;
  state.stop = Math.min(Math.max(state.stop, 1), state.count);
  for (const meta of detail.layers) layers.push({ meta, on: meta.visible !== false, tileset: null, loading: null });
  const collection = overlays;
  overlays = null;
  try {
    viewer = createViewer();
  } catch (error) {
    // No WebGL: the tour still reads (texts, stops, language), only without 3D.
    fail("webgl_failed", String(error));
    viewer = null;
  }
  if (viewer && collection) {
    overlays = new OverlayLayer(Cesium, viewer, collection);
    overlays.setLanguage(state.lang);
  }
  renderStopList();
  buildViewOptions();
  state.timings.data = performance.now();
  if (viewer) viewer.scene.postRender.addEventListener(onFrame);
  showStop(state.stop, { how: "jump", history: "none" });
  window.tour = { viewer, Cesium, layers, overlays, showStop, setEpoch, setLanguage, screenRect };
}

start().catch((error) => fail("load_failed", String(error)));
