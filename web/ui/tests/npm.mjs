// Finds an npm package for the tests: ES modules ignore NODE_PATH, so look there by hand.
import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Imports `file` (e.g. "@noble/hashes/blake3.js") from a bare import or a NODE_PATH entry. */
export async function importFromNodePath(file) {
  try {
    return await import(file);
  } catch (e) {
    if (e.code !== "ERR_MODULE_NOT_FOUND") throw e;
  }
  for (const dir of (process.env.NODE_PATH ?? "").split(path.delimiter).filter(Boolean)) {
    const full = path.join(dir, file);
    if (existsSync(full)) return import(pathToFileURL(full).href);
  }
  throw new Error(
    `cannot find ${file}: run scripts/check-doc-scripts (it installs it under ` +
      "target/doc-scripts/npm) or set NODE_PATH to a node_modules that holds it",
  );
}
