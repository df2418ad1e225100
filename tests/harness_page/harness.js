// Minimal CesiumJS viewer for the real-client test harness (tests/cesium_harness.py).
//
// Query string: tileset (URL, required), sse (maximumScreenSpaceError, default 16),
// heading / pitch (degrees, default 30 / -35), range (metres from the bounding-sphere centre;
// 0 = fit the whole bounding sphere in view),
// time (ISO 8601, fixes the sun; default 2024-06-21T11:00:00Z, near noon in Rostock),
// stableFrames / stableMs (how many rendered frames and how long all tiles must stay loaded
// with the camera still before "ready"; default 5 frames and 500 ms, which outlasts Cesium's
// foveatedTimeDelay of 200 ms, after which tiles deferred while the camera moved are requested).
//
// Publishes on window:
//   harnessErrors  list of strings (load failures, tileFailed, render errors, uncaught errors)
//   harnessState   {status: "loading" | "ready" | "failed", tilesLoaded, stats, colors, errors}
//   harnessReady   promise resolving to harnessState when status leaves "loading"
"use strict";

(function () {
  // Flat, known colours so the Python side can tell scene content from empty space.
  // Keep in sync with SKY_RGB / GLOBE_RGB in tests/cesium_harness.py.
  const SKY_RGB = [16, 24, 48];
  const GLOBE_RGB = [40, 40, 40];

  const errors = [];
  window.harnessErrors = errors;
  const state = { status: "loading", tilesLoaded: false, stats: {}, colors: { sky: SKY_RGB, globe: GLOBE_RGB }, errors };
  window.harnessState = state;
  let settle;
  window.harnessReady = new Promise((resolve) => { settle = resolve; });

  function finish(status) {
    if (state.status !== "loading") return;
    state.status = status;
    settle(state);
  }
  function fail(message) {
    errors.push(String(message));
    finish("failed");
  }
  window.addEventListener("error", (event) => errors.push(`uncaught: ${event.message}`));
  window.addEventListener("unhandledrejection", (event) => errors.push(`unhandled rejection: ${event.reason}`));

  const params = new URLSearchParams(window.location.search);
  const number = (name, fallback) => {
    const value = params.get(name);
    return value === null || value === "" ? fallback : Number(value);
  };
  const tilesetUrl = params.get("tileset");
  const sse = number("sse", 16);
  const heading = number("heading", 30);
  const pitch = number("pitch", -35);
  const range = number("range", 0);
  // view=lon,lat,height,heading,pitch[,fov]: an explicit camera (degrees, ellipsoidal metres),
  // e.g. a tour stop's, instead of fitting the tileset's bounding sphere.
  const view = params.get("view") ? params.get("view").split(",").map(Number) : null;
  const stableFrames = number("stableFrames", 5);
  const stableMs = number("stableMs", 500);
  const time = params.get("time") || "2024-06-21T11:00:00Z";

  if (typeof Cesium === "undefined") {
    fail("Cesium.js did not load from /cesium/");
    return;
  }
  // No Ion: nothing in this page may talk to cesium.com.
  Cesium.Ion.defaultAccessToken = "";

  let viewer;
  try {
    viewer = new Cesium.Viewer("cesiumContainer", {
      baseLayer: false,
      terrainProvider: new Cesium.EllipsoidTerrainProvider(),
      animation: false,
      baseLayerPicker: false,
      fullscreenButton: false,
      vrButton: false,
      geocoder: false,
      homeButton: false,
      infoBox: false,
      sceneModePicker: false,
      selectionIndicator: false,
      timeline: false,
      navigationHelpButton: false,
      navigationInstructionsInitiallyVisible: false,
      projectionPicker: false,
      creditContainer: "credits",
      skyBox: false,
      skyAtmosphere: false,
      requestRenderMode: false,
      showRenderLoopErrors: false,
      shouldAnimate: false,
      contextOptions: { webgl: { preserveDrawingBuffer: true } },
    });
  } catch (error) {
    fail(`Viewer construction failed: ${error}`);
    return;
  }
  window.harnessViewer = viewer;

  const scene = viewer.scene;
  scene.renderError.addEventListener((_scene, error) => errors.push(`render error: ${error}`));
  scene.backgroundColor = Cesium.Color.fromBytes(...SKY_RGB, 255);
  scene.globe.baseColor = Cesium.Color.fromBytes(...GLOBE_RGB, 255);
  scene.globe.showGroundAtmosphere = false;
  scene.globe.enableLighting = false;
  scene.fog.enabled = false;
  if (scene.sun) scene.sun.show = false;
  if (scene.moon) scene.moon.show = false;
  // A fixed simulation time fixes the sun direction, and with it the lighting of the models.
  viewer.clock.currentTime = Cesium.JulianDate.fromIso8601(time);
  viewer.clock.shouldAnimate = false;

  if (!tilesetUrl) {
    fail("no ?tileset= URL given");
    return;
  }

  function collectStats(tileset) {
    const stats = {};
    const s = tileset.statistics; // private in Cesium's API; best effort
    if (s) {
      for (const key of [
        "selected", "visited", "numberOfCommands", "numberOfTilesTotal",
        "numberOfTilesWithContentReady", "numberOfLoadedTilesTotal",
        "numberOfPendingRequests", "numberOfTilesProcessing", "numberOfAttemptedRequests",
        "numberOfTrianglesSelected", "numberOfFeaturesLoaded", "numberOfPointsLoaded",
        "geometryByteLength", "texturesByteLength",
      ]) {
        if (typeof s[key] === "number") stats[key] = s[key];
      }
    }
    const sphere = tileset.boundingSphere;
    const carto = Cesium.Cartographic.fromCartesian(sphere.center);
    stats.boundingSphereRadius = sphere.radius;
    if (carto) {
      stats.boundingSphereCenterLonLatHeight = [
        Cesium.Math.toDegrees(carto.longitude), Cesium.Math.toDegrees(carto.latitude), carto.height,
      ];
    }
    const camera = scene.camera;
    const cameraCarto = camera.positionCartographic;
    stats.camera = {
      lonLatHeight: [
        Cesium.Math.toDegrees(cameraCarto.longitude), Cesium.Math.toDegrees(cameraCarto.latitude), cameraCarto.height,
      ],
      heading: Cesium.Math.toDegrees(camera.heading),
      pitch: Cesium.Math.toDegrees(camera.pitch),
    };
    stats.allTilesLoadedEvents = allTilesLoadedEvents;
    stats.frames = frames;
    return stats;
  }

  let allTilesLoadedEvents = 0;
  let frames = 0;

  async function run() {
    let tileset;
    try {
      tileset = await Cesium.Cesium3DTileset.fromUrl(tilesetUrl, { maximumScreenSpaceError: sse });
    } catch (error) {
      fail(`tileset load failed: ${tilesetUrl}: ${error}`);
      return;
    }
    window.harnessTileset = tileset;
    tileset.tileFailed.addEventListener((event) => errors.push(`tile failed: ${event.url}: ${event.message}`));
    tileset.allTilesLoaded.addEventListener(() => { allTilesLoadedEvents += 1; });
    scene.primitives.add(tileset);

    // Cesium's own fit (range 0) uses tan(fov/2) and crops the bounding sphere; the harness
    // wants the whole tileset in view, so it fits with sin(fovy/2) and a small margin.
    const fovy = scene.camera.frustum.fovy;
    const fitRange = (1.1 * tileset.boundingSphere.radius) / Math.sin(fovy / 2);
    const offset = new Cesium.HeadingPitchRange(
      Cesium.Math.toRadians(heading), Cesium.Math.toRadians(pitch), range > 0 ? range : fitRange,
    );
    try {
      if (view) {
        if (view.length > 5) scene.camera.frustum.fov = Cesium.Math.toRadians(view[5]);
        scene.camera.setView({
          destination: Cesium.Cartesian3.fromDegrees(view[0], view[1], view[2]),
          orientation: {
            heading: Cesium.Math.toRadians(view[3]),
            pitch: Cesium.Math.toRadians(view[4]),
            roll: 0,
          },
        });
      } else {
        await viewer.zoomTo(tileset, offset);
      }
    } catch (error) {
      fail(`camera failed: ${error}`);
      return;
    }

    // "Ready" = the camera has stopped and tileset.tilesLoaded has held for stableFrames
    // consecutive rendered frames and stableMs. Not the allTilesLoaded event alone: it is only
    // raised when request counts change, so a tileset with nothing to request never raises it,
    // and it may fire for the view before zoomTo moved the camera.
    let lastPosition = scene.camera.positionWC.clone();
    let lastDirection = scene.camera.directionWC.clone();
    let stable = 0;
    let stableSince = 0;
    const removeListener = scene.postRender.addEventListener(() => {
      frames += 1;
      const camera = scene.camera;
      const still =
        Cesium.Cartesian3.equalsEpsilon(camera.positionWC, lastPosition, 0, 1e-6) &&
        Cesium.Cartesian3.equalsEpsilon(camera.directionWC, lastDirection, 1e-9);
      lastPosition = camera.positionWC.clone(lastPosition);
      lastDirection = camera.directionWC.clone(lastDirection);
      state.tilesLoaded = tileset.tilesLoaded;
      const now = performance.now();
      if (still && tileset.tilesLoaded) {
        if (stable === 0) stableSince = now;
        stable += 1;
      } else {
        stable = 0;
      }
      state.stats = collectStats(tileset);
      if (stable >= stableFrames && now - stableSince >= stableMs) {
        removeListener();
        finish("ready");
      }
    });
  }

  run().catch((error) => fail(`harness error: ${error}`));
})();
