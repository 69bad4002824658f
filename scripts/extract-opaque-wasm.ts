/**
 * Extracts the WebAssembly binary that @serenity-kit/opaque ships inlined as
 * base64 into `edge/generated/opaque.wasm`, and writes the package's
 * wasm-bindgen JS glue, minus the inline-wasm initialisation, to
 * `edge/generated/opaque-glue.js` (plus `opaque-glue.d.ts`).
 *
 * Why: workerd forbids compiling wasm from bytes at runtime
 * (`WebAssembly.compile`/`instantiate(bytes)`), which is what the package does
 * on import. workerd/wrangler can instead import a `.wasm` file as a
 * precompiled `WebAssembly.Module` ("CompiledWasm" module rule); the generated
 * glue's `initOpaque(module)` accepts such a module.
 *
 * Idempotent: outputs are computed in memory and only (atomically) rewritten
 * when their content differs. Silent unless something was written.
 *
 *   node scripts/extract-opaque-wasm.ts           # generate / update
 *   node scripts/extract-opaque-wasm.ts --check   # exit 1 if outputs are stale
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE = "@serenity-kit/opaque";

const root = fileURLToPath(new URL("..", import.meta.url));
const outDir = join(root, "edge", "generated");
const wasmOut = join(outDir, "opaque.wasm");
const glueOut = join(outDir, "opaque-glue.js");
const glueDtsOut = join(outDir, "opaque-glue.d.ts");

class ExtractError extends Error {
  constructor(message: string) {
    super(`extract-opaque-wasm: ${message}`);
    this.name = "ExtractError";
  }
}

interface PackageJson {
  version?: string;
  module?: string;
}

interface Output {
  path: string;
  data: Uint8Array;
}

function readPackage(): { version: string; source: string; sourcePath: string } {
  const require = createRequire(import.meta.url);
  let pkgJsonPath: string;
  try {
    pkgJsonPath = require.resolve(`${PACKAGE}/package.json`);
  } catch {
    throw new ExtractError(`${PACKAGE} is not installed (run npm install)`);
  }
  const pkg = JSON.parse(readFileSync(pkgJsonPath, "utf8")) as PackageJson;
  const sourcePath = join(dirname(pkgJsonPath), pkg.module ?? "esm/index.js");
  return {
    version: pkg.version ?? "unknown",
    source: readFileSync(sourcePath, "utf8"),
    sourcePath,
  };
}

/** Replace exactly one match of `re` in `text`, or fail with `what`. */
function replaceOnce(text: string, re: RegExp, replacement: string, what: string): string {
  const global = new RegExp(re.source, re.flags.includes("g") ? re.flags : `${re.flags}g`);
  const count = [...text.matchAll(global)].length;
  if (count !== 1) {
    throw new ExtractError(
      `expected exactly one ${what} in the package's esm build, found ${count}; ` +
        `the ${PACKAGE} build layout changed, update this script`,
    );
  }
  return text.replace(re, () => replacement);
}

function buildOutputs(): Output[] {
  const { version, source, sourcePath } = readPackage();
  const srcRel = relative(root, sourcePath);

  // 1. The inline wasm: `function wasmData(imports){return _loadWasmModule(0, null, '<base64>'[, imports])}`
  const wasmDataRe =
    /function\s+wasmData\s*\(\s*imports\s*\)\s*\{\s*return\s+_loadWasmModule\(\s*0\s*,\s*null\s*,\s*'([A-Za-z0-9+/=]+)'\s*(?:,\s*imports\s*)?\)\s*;?\s*\}/;
  const wasmMatch = wasmDataRe.exec(source);
  if (wasmMatch === null || wasmMatch[1] === undefined) {
    throw new ExtractError(`no inline wasm (wasmData) found in ${srcRel}`);
  }
  const wasm = new Uint8Array(Buffer.from(wasmMatch[1], "base64"));
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (wasm.length < 8 || magic.some((b, i) => wasm[i] !== b)) {
    throw new ExtractError(`inline data in ${srcRel} is not a wasm v1 binary`);
  }

  // 2. The glue: drop `_loadWasmModule` + `wasmData` (they sit together at the top),
  //    the eager `ready` initialisation, and re-export with an explicit init.
  const loaderStart = source.indexOf("function _loadWasmModule");
  if (loaderStart < 0 || loaderStart > wasmMatch.index) {
    throw new ExtractError(`_loadWasmModule not found before wasmData in ${srcRel}`);
  }
  let glue = source.slice(0, loaderStart) + source.slice(wasmMatch.index + wasmMatch[0].length);
  glue = replaceOnce(
    glue,
    /const\s+ready\s*=\s*__wbg_init\(\s*\{\s*module_or_path\s*:\s*wasmData\(\s*\)\s*\}\s*\)\s*\.then\(\s*\(\s*\)\s*=>\s*\{\s*\}\s*\)\s*;?/,
    "",
    "eager `const ready = __wbg_init(...)`",
  );
  glue = replaceOnce(
    glue,
    /export\s*\{\s*client\s*,\s*ready\s*,\s*server\s*\}\s*;?/,
    "",
    "`export { client, ready, server }`",
  );
  glue = glue.replace(/\/\*\s*@ts-self-types="[^"]*"\s*\*\/\n?/g, "");
  for (const banned of ["_loadWasmModule", "wasmData", "WebAssembly.compile"]) {
    if (glue.includes(banned)) {
      throw new ExtractError(`glue still references ${banned} after stripping ${srcRel}`);
    }
  }
  if (!glue.includes("function __wbg_init(") || !glue.includes("function __wbg_get_imports(")) {
    throw new ExtractError(`wasm-bindgen __wbg_init/__wbg_get_imports not found in ${srcRel}`);
  }

  const sha256 = createHash("sha256").update(wasm).digest("hex");
  const header =
    `// GENERATED by scripts/extract-opaque-wasm.ts from ${PACKAGE}@${version} (${srcRel}). Do not edit.\n` +
    `// The inline base64 wasm and its runtime compilation were removed; the binary is\n` +
    `// ./opaque.wasm (sha256 ${sha256}), to be imported as a precompiled WebAssembly.Module.\n`;
  const footer = `
let opaqueInitPromise;

/**
 * Instantiate the glue with a precompiled WebAssembly.Module (workerd / wrangler
 * "CompiledWasm" import of ./opaque.wasm). Memoised; a failed attempt can be retried.
 * @param {WebAssembly.Module} module
 * @returns {Promise<void>}
 */
function initOpaque(module) {
    if (!(module instanceof WebAssembly.Module)) {
        return Promise.reject(new TypeError("initOpaque: expected a WebAssembly.Module (import opaque.wasm with a CompiledWasm rule), got " + Object.prototype.toString.call(module)));
    }
    if (opaqueInitPromise === undefined) {
        opaqueInitPromise = __wbg_init({ module_or_path: module }).then(() => undefined, (err) => {
            opaqueInitPromise = undefined;
            throw err;
        });
    }
    return opaqueInitPromise;
}

export { client, server, initOpaque };
`;
  const glueText = `${header}\n${glue.trimEnd()}\n${footer}`;

  const dts =
    `// GENERATED by scripts/extract-opaque-wasm.ts from ${PACKAGE}@${version}. Do not edit.\n` +
    `import type { client as Client, server as Server } from "${PACKAGE}";\n` +
    `export declare const client: typeof Client;\n` +
    `export declare const server: typeof Server;\n` +
    `/** Instantiate with a precompiled WebAssembly.Module (./opaque.wasm). Memoised. */\n` +
    `export declare function initOpaque(module: WebAssembly.Module): Promise<void>;\n`;

  const enc = new TextEncoder();
  return [
    { path: wasmOut, data: wasm },
    { path: glueOut, data: enc.encode(glueText) },
    { path: glueDtsOut, data: enc.encode(dts) },
  ];
}

function readOrNull(path: string): Uint8Array | null {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

// @types/node does not type the WebAssembly global; declare the bit used here.
interface WasmModuleApi {
  new (bytes: Uint8Array): object;
  imports(module: object): { module: string; name: string; kind: string }[];
}
const WasmModule = (globalThis as unknown as { WebAssembly: { Module: WasmModuleApi } }).WebAssembly.Module;

/** Sanity check (only when writing): every import the wasm needs is provided by the glue. */
function checkImports(wasm: Uint8Array, glue: string): void {
  const mod = new WasmModule(wasm);
  const missing = WasmModule.imports(mod)
    .filter((imp) => imp.module !== "./opaque_bg.js" || !glue.includes(`${imp.name}:`))
    .map((imp) => `${imp.module}.${imp.name}`);
  if (missing.length > 0) {
    throw new ExtractError(`glue does not provide wasm imports: ${missing.join(", ")}`);
  }
}

function main(): void {
  const check = process.argv.includes("--check");
  const outputs = buildOutputs();
  const stale = outputs.filter((o) => {
    const existing = readOrNull(o.path);
    return existing === null || !sameBytes(existing, o.data);
  });
  if (stale.length === 0) return;

  if (check) {
    for (const o of stale) console.error(`extract-opaque-wasm: stale ${relative(root, o.path)}`);
    process.exitCode = 1;
    return;
  }

  const [wasm, glue] = outputs;
  if (wasm !== undefined && glue !== undefined) {
    checkImports(wasm.data, new TextDecoder().decode(glue.data));
  }
  mkdirSync(outDir, { recursive: true });
  for (const o of stale) {
    const tmp = `${o.path}.${process.pid}.tmp`;
    writeFileSync(tmp, o.data);
    renameSync(tmp, o.path);
    console.log(`extract-opaque-wasm: wrote ${relative(root, o.path)} (${o.data.length} bytes)`);
  }
}

try {
  main();
} catch (err) {
  if (err instanceof ExtractError) {
    console.error(err.message);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
