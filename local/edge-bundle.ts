// Bundles the edge worker for Miniflare: one ESM bundle plus its `.wasm` imports kept as
// separate CompiledWasm modules (workerd refuses wasm compiled at runtime).
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import * as esbuild from "esbuild";

export interface EdgeBundle {
  main: string;
  wasm: Map<string, Uint8Array>;
}

const root = resolve(new URL("..", import.meta.url).pathname);

export async function bundleEdge(): Promise<EdgeBundle> {
  const wasmFiles = new Map<string, string>();
  const result = await esbuild.build({
    entryPoints: [resolve(root, "edge/worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2023",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    write: false,
    logLevel: "silent",
    external: ["cloudflare:*"],
    plugins: [
      {
        name: "compiled-wasm",
        setup(build) {
          build.onResolve({ filter: /\.wasm$/ }, (args) => {
            const abs = resolve(args.resolveDir, args.path);
            const name = basename(abs);
            wasmFiles.set(name, abs);
            return { path: `./${name}`, external: true };
          });
        },
      },
    ],
  });
  const main = result.outputFiles[0]?.text;
  if (!main) throw new Error("esbuild produced no edge bundle");
  const wasm = new Map<string, Uint8Array>();
  for (const [name, abs] of wasmFiles) wasm.set(name, new Uint8Array(readFileSync(abs)));
  return { main, wasm };
}
