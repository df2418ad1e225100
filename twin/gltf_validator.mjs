// Runs the Khronos glTF validator (npm package gltf-validator) on many files in one process,
// because Node start-up and loading the compiled Dart validator dominate for small tiles.
//
// Usage: node gltf_validator.mjs <node_modules dir> < paths.json
//   stdin:  a JSON array of absolute file paths
//   stdout: one JSON object per line and file, in input order:
//           {"path", "numErrors", "numWarnings", "truncated", "messages": [{code, message,
//           severity, pointer?, offset?}]}  or  {"path", "failure": "<why it could not run>"}
// Called by twin/validate.py; it resolves external resources (buffers, images) only relative
// to the file that refers to them, never against the working directory or the network.

import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import path from "node:path";

const MAX_ISSUES = 100; // per file; numErrors/numWarnings still count them all

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function resourceLoader(file) {
  const dir = path.dirname(file);
  return async (uri) => {
    const decoded = decodeURIComponent(uri);
    if (/^[a-z][a-z0-9+.-]*:/i.test(decoded) || path.isAbsolute(decoded)) {
      throw new Error(`refusing non-relative resource URI ${uri}`);
    }
    return new Uint8Array(await readFile(path.resolve(dir, decoded)));
  };
}

async function main() {
  const nodeModules = process.argv[2];
  if (!nodeModules) {
    process.stderr.write("usage: node gltf_validator.mjs <node_modules dir> < paths.json\n");
    process.exit(2);
  }
  const require = createRequire(path.join(path.resolve(nodeModules), "noop.js"));
  const validator = require("gltf-validator");
  const files = JSON.parse(await readStdin());
  for (const file of files) {
    let line;
    try {
      const bytes = new Uint8Array(await readFile(file));
      const report = await validator.validateBytes(bytes, {
        uri: path.basename(file),
        format: file.toLowerCase().endsWith(".gltf") ? "gltf" : "glb",
        maxIssues: MAX_ISSUES,
        writeTimestamp: false,
        externalResourceFunction: resourceLoader(file),
      });
      const issues = report.issues;
      line = {
        path: file,
        numErrors: issues.numErrors,
        numWarnings: issues.numWarnings,
        truncated: issues.truncated,
        messages: issues.messages,
      };
    } catch (error) {
      line = { path: file, failure: String(error) };
    }
    process.stdout.write(JSON.stringify(line) + "\n");
  }
}

main().catch((error) => {
  process.stderr.write(`gltf_validator.mjs: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
