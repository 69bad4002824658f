// Every npm/npx command the README, the docs and wrangler.toml tell an operator to run names
// something that exists: a package.json script, this package's bin, or a binary in
// node_modules/.bin. A renamed script or a made-up command name fails here, not on a user.
import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../..", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  scripts: Record<string, string>;
  bin: Record<string, string>;
  version: string;
};
/** npm's own commands the docs use. */
const NPM_BUILTINS = new Set(["ci", "install"]);

interface Use {
  file: string;
  kind: "script" | "binary";
  name: string;
  text: string;
}

/** The npm invocations in a text: `npm run [-s] X`, `npm start|test`, `npm exec [--] X`, `npx [--no] X`. */
function npmCommands(file: string, text: string): Use[] {
  const uses: Use[] = [];
  const re =
    /\bnpm\s+(run(?:-script)?|exec|start|test|ci|install)\b((?:\s+(?:-s|--silent|--no|--))*)\s*([\w@./:-]*)|\bnpx((?:\s+(?:--no|--yes|-y|--))*)\s+([\w@./:-]+)/g;
  for (const m of text.matchAll(re)) {
    if (m[5] !== undefined) {
      uses.push({ file, kind: "binary", name: m[5], text: m[0] });
    } else if (m[1] === "run" || m[1] === "run-script") {
      uses.push({ file, kind: "script", name: m[3], text: m[0] });
    } else if (m[1] === "exec") {
      uses.push({ file, kind: "binary", name: m[3], text: m[0] });
    } else if (m[1] === "start" || m[1] === "test") {
      uses.push({ file, kind: "script", name: m[1], text: m[0] });
    } else if (!NPM_BUILTINS.has(m[1])) {
      uses.push({ file, kind: "script", name: m[1], text: m[0] });
    }
  }
  return uses;
}

function exists(use: Use): boolean {
  if (use.kind === "script") return Object.hasOwn(pkg.scripts, use.name);
  return Object.hasOwn(pkg.bin, use.name) || existsSync(join(root, "node_modules/.bin", use.name));
}

const tomlComments = readFileSync(join(root, "wrangler.toml"), "utf8")
  .split("\n")
  .filter((l) => l.trimStart().startsWith("#"))
  .join("\n");
const docs = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const uses = [
  ...docs.flatMap((f) => npmCommands(f, readFileSync(join(root, f), "utf8"))),
  ...npmCommands("wrangler.toml", tomlComments),
];

describe("commands the documentation names", () => {
  it("finds the commands it should check (the extractor works)", () => {
    expect(
      npmCommands("x", "run `npm run -s qpq -- health` or npm exec -- qpq, npx --no wrangler d1, npm start, npm ci"),
    ).toEqual([
      { file: "x", kind: "script", name: "qpq", text: "npm run -s qpq" },
      { file: "x", kind: "binary", name: "qpq", text: "npm exec -- qpq" },
      { file: "x", kind: "binary", name: "wrangler", text: "npx --no wrangler" },
      { file: "x", kind: "script", name: "start", text: "npm start" },
    ]);
    expect(npmCommands("x", "npm exec qpq-edge-secrets").map(exists)).toEqual([false]);
    const names = new Set(uses.map((u) => `${u.kind}:${u.name}`));
    for (const expected of [
      "script:start",
      "script:test",
      "script:qpq",
      "script:front",
      "script:secrets",
      "script:deploy",
      "script:plugin",
      "binary:wrangler",
    ]) {
      expect(names, expected).toContain(expected);
    }
  });

  it("every one exists in package.json scripts/bin or node_modules/.bin", () => {
    expect(uses.filter((u) => !exists(u)).map((u) => `${u.file}: ${u.text}`)).toEqual([]);
  });

  it("README opens with the two commands, then says Node 24 comes with npm ci", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const [title, blank, fence, start, test, close] = readme.split("\n");
    expect([title, blank, fence, close]).toEqual(["# qpq-edge", "", "```sh", "```"]);
    expect(start).toMatch(/^npm ci && npm start\s+#/);
    expect(test).toMatch(/^npm ci && npm test\s+#/);
    const next = readme.split("\n").slice(7, 12).join(" ");
    expect(next).toMatch(/^Node 24 is required, and `npm ci` brings it/);
    expect(pkg.scripts.front).toBe("node quic-front/main.ts");
  });

  it("the edge's QPQ_VERSION in wrangler.toml is the package version the front reports", () => {
    const version = /^QPQ_VERSION = "([^"]+)"$/m.exec(readFileSync(join(root, "wrangler.toml"), "utf8"))?.[1];
    expect(version).toBe(pkg.version);
  });
});
