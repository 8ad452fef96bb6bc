// The parts of three.js the viewer pages use (scene_pe/viewer/js/viewer.js), bundled by
// scene_pe/viewer/build.py into one script that sets window.SCENE_PE_THREE.
import {
  BufferAttribute, BufferGeometry, Color, LinearSRGBColorSpace, PerspectiveCamera, Points, PointsMaterial, Raycaster, REVISION,
  Scene, Vector2, Vector3, WebGLRenderer,
} from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

window.SCENE_PE_THREE = {
  BufferAttribute, BufferGeometry, Color, LinearSRGBColorSpace, OrbitControls, PerspectiveCamera, Points, PointsMaterial, Raycaster,
  REVISION, Scene, Vector2, Vector3, WebGLRenderer,
};
