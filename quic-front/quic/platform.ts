// Which native QUIC binding this machine has, and whether it matches the JavaScript that drives
// it. @matrixai/quic publishes its quiche binding per platform; at 2.0.9 only linux-x64 has a
// build (darwin and win32 stop at 1.2.12, linux-arm64 has none), so elsewhere the front cannot
// run and start-up says so in one line instead of failing somewhere inside the binding.
// Pure apart from `installedBindings`, which reads package.json files.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** Binding packages @matrixai/quic tries, in order, for a platform and architecture (as its loader does). */
export function bindingTargets(platform: string, arch: string): string[] {
  if (platform === "darwin" && arch === "x64")
    return ["darwin-x64", "darwin-x64+arm64", "darwin-arm64+x64", "darwin-universal"];
  if (platform === "darwin" && arch === "arm64")
    return ["darwin-arm64", "darwin-arm64+x64", "darwin-x64+arm64", "darwin-universal"];
  return [`${platform}-${arch}`];
}

/** Platforms the registry publishes a binding for at the JavaScript's version (checked 2026-11-30). */
export const PUBLISHED_AT_JS_VERSION = ["linux-x64"] as const;

/**
 * One line saying why this machine cannot run the QUIC front, or undefined when it can.
 * `installed` maps binding target → version of the installed binding package.
 */
export function bindingProblem(
  platform: string,
  arch: string,
  jsVersion: string,
  installed: ReadonlyMap<string, string>,
): string | undefined {
  const here = `${platform}-${arch}`;
  const targets = bindingTargets(platform, arch);
  const found = targets.find((t) => installed.has(t));
  const served = `@matrixai/quic ${jsVersion} publishes its native binding for ${PUBLISHED_AT_JS_VERSION.join(", ")} only`;
  if (found === undefined)
    return `QUIC front unavailable on ${here}: no native QUIC binding is installed for it (${served}); run the front on linux-x64`;
  const version = installed.get(found)!;
  if (version !== jsVersion)
    return `QUIC front unavailable on ${here}: its native QUIC binding is ${version} but @matrixai/quic is ${jsVersion} (${served}); run the front on linux-x64`;
  return undefined;
}

/** Versions of the binding packages installed next to @matrixai/quic. */
export function installedBindings(
  platform: string,
  arch: string,
): { jsVersion: string; installed: Map<string, string> } {
  const require = createRequire(import.meta.url);
  const quicDir = dirname(require.resolve("@matrixai/quic/package.json"));
  const jsVersion = (JSON.parse(readFileSync(join(quicDir, "package.json"), "utf8")) as { version: string }).version;
  const installed = new Map<string, string>();
  for (const target of bindingTargets(platform, arch)) {
    // Installed side by side (node_modules/@matrixai/quic-<target>), or under @matrixai/quic itself.
    for (const dir of [
      join(quicDir, "..", `quic-${target}`),
      join(quicDir, "node_modules", "@matrixai", `quic-${target}`),
    ]) {
      const file = join(dir, "package.json");
      if (!existsSync(file)) continue;
      installed.set(target, (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version);
      break;
    }
  }
  return { jsVersion, installed };
}

/** The problem with this machine's binding, if any. */
export function thisMachineProblem(): string | undefined {
  const { jsVersion, installed } = installedBindings(process.platform, process.arch);
  return bindingProblem(process.platform, process.arch, jsVersion, installed);
}
