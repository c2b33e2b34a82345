// Decodes an SPZ file with Niantic's own SPZ library (the npm @adobe/spz package: the C++
// reference implementation compiled to WebAssembly), with no coordinate conversion, and
// writes its Gaussian cloud as float32 arrays to OUT.bin, in this order: positions [N, 3],
// scales [N, 3] (log), rotations [N, 4] (xyzw), alphas [N] (logit), colors [N, 3] (SH DC),
// sh [N, K, 3]; a JSON line on stdout gives N and the SH degree.
// Usage: node spz_read.mjs FILE.spz OUT
import { readFileSync, writeFileSync } from "node:fs";
import createSpzModule from "@adobe/spz";

const [file, out] = process.argv.slice(2);
const spz = await createSpzModule();
const cloud = spz.loadSpzFromBuffer(new Uint8Array(readFileSync(file)), {
  to: spz.CoordinateSystem.UNSPECIFIED,
});
const arrays = [cloud.positions, cloud.scales, cloud.rotations, cloud.alphas, cloud.colors, cloud.sh];
writeFileSync(`${out}.bin`, Buffer.concat(arrays.map((a) => Buffer.from(new Float32Array(a).buffer))));
console.log(JSON.stringify({ count: cloud.numPoints, shDegree: cloud.shDegree }));
