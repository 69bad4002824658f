// `.wasm` imports are precompiled modules under the wrangler/workerd "CompiledWasm"
// module rule (wrangler's default for **/*.wasm; Miniflare: modulesRules CompiledWasm).
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
