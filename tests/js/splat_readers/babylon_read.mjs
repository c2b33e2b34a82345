// Loads a GLB with Babylon.js's own glTF loader and its KHR_gaussian_splatting extension
// (NullEngine: no browser, no GPU) and writes what the loader decoded, i.e. what Babylon
// would render: OUT.bin, the 32-byte splat records (position f32 x3, scale f32 x3,
// RGBA u8 x4, quaternion wxyz u8 x4 as q * 127.5 + 127.5), OUT.sh.bin, the SH bytes
// (coefficient * 128 + 128, 16 a splat in each texture), and a JSON line on stdout.
// Usage: node babylon_read.mjs FILE.glb OUT
import { readFileSync, writeFileSync } from "node:fs";
import { GaussianSplattingMesh, LoadAssetContainerAsync, NullEngine, Scene } from "@babylonjs/core";
import "@babylonjs/loaders/glTF/index.js";

// The mesh starts a depth-sorting Web Worker, which Node lacks; sorting is for drawing only.
globalThis.Worker = class { postMessage() {} terminate() {} addEventListener() {} };

const decoded = [];
const update = GaussianSplattingMesh.prototype.updateDataAsync;
GaussianSplattingMesh.prototype.updateDataAsync = function (data, sh, partIndices, shDegree) {
  decoded.push({ data: new Uint8Array(data.slice(0)), sh: sh ?? [], shDegree: shDegree ?? 0 });
  return update.apply(this, arguments);
};

const [file, out] = process.argv.slice(2);
const scene = new Scene(new NullEngine());
const container = await LoadAssetContainerAsync(new Uint8Array(readFileSync(file)), scene, {
  pluginExtension: ".glb",
});
const meshes = container.meshes.filter((m) => m.getClassName() === "GaussianSplattingMesh");
const { data, sh, shDegree } = decoded[0];
const count = data.length / 32;
writeFileSync(`${out}.bin`, Buffer.from(data));
writeFileSync(`${out}.sh.bin`, Buffer.concat(sh.map((t) => Buffer.from(t.buffer, t.byteOffset, count * 16))));
console.log(JSON.stringify({ meshes: meshes.length, count, shDegree, shTextures: sh.length }));
process.exit(0);
