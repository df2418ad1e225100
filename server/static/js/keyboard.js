// Keyboard control of the camera while the 3D view has focus (CesiumJS has mouse and touch
// input only): arrows move over the ground, Shift+arrows turn and tilt, +/- and Page Up/Down
// change the height, Enter or Space asks what is in the centre of the view.

const TURN_DEG = 5;
const TILT_DEG = 4;

export function attachKeyboardCamera(Cesium, viewer, element, { onMove, onPickCentre }) {
  const camera = viewer.scene.camera;

  // Steps scale with the height above the scene, so one press moves a visible amount at any
  // zoom: about a tenth of the way to the ground.
  function step() {
    const carto = camera.positionCartographic;
    const ground = viewer.scene.sampleHeightSupported
      ? viewer.scene.sampleHeight(carto, undefined, 1) : undefined;
    const above = carto.height - (Number.isFinite(ground) ? ground : 40);
    return Math.min(Math.max(Math.abs(above) * 0.12, 4), 400);
  }

  // Forward/right along the ground (the camera's direction projected on the local horizon).
  function horizontal(vector) {
    const up = Cesium.Cartesian3.normalize(camera.positionWC, new Cesium.Cartesian3());
    const along = Cesium.Cartesian3.subtract(
      vector,
      Cesium.Cartesian3.multiplyByScalar(up, Cesium.Cartesian3.dot(vector, up), new Cesium.Cartesian3()),
      new Cesium.Cartesian3(),
    );
    if (Cesium.Cartesian3.magnitude(along) < 1e-6) return camera.up.clone();
    return Cesium.Cartesian3.normalize(along, along);
  }

  function handle(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return false;
    const key = event.key;
    const amount = step();
    if (event.shiftKey && key.startsWith("Arrow")) {
      // Turn about the vertical and tilt about the horizon, the horizon kept level.
      const turn = { ArrowLeft: -TURN_DEG, ArrowRight: TURN_DEG }[key] ?? 0;
      const tilt = { ArrowUp: TILT_DEG, ArrowDown: -TILT_DEG }[key] ?? 0;
      const pitch = Cesium.Math.clamp(
        camera.pitch + Cesium.Math.toRadians(tilt), -Cesium.Math.PI_OVER_TWO, Cesium.Math.toRadians(30),
      );
      camera.setView({
        orientation: {
          heading: Cesium.Math.zeroToTwoPi(camera.heading + Cesium.Math.toRadians(turn)),
          pitch,
          roll: 0,
        },
      });
      return "move";
    }
    switch (key) {
      case "ArrowUp": camera.move(horizontal(camera.direction), amount); return "move";
      case "ArrowDown": camera.move(horizontal(camera.direction), -amount); return "move";
      case "ArrowLeft": camera.move(horizontal(camera.right), -amount); return "move";
      case "ArrowRight": camera.move(horizontal(camera.right), amount); return "move";
      case "+": case "=": case "PageDown": camera.moveForward(amount); return "move";
      case "-": case "_": case "PageUp": camera.moveBackward(amount); return "move";
      case "Enter": case " ": return "pick";
      default: return false;
    }
  }

  element.addEventListener("keydown", (event) => {
    const action = handle(event);
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    if (action === "move") {
      viewer.scene.requestRender();
      onMove();
    } else {
      onPickCentre();
    }
  });
}
