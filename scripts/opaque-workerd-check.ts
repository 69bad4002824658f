/**
 * Smoke check: edge/lib/opaque.ts (server side of OPAQUE) really runs inside
 * workerd. Bundles a tiny worker around it with esbuild in memory (wasm kept
 * external and loaded as a CompiledWasm module), runs it in Miniflare, and plays the client
 * here in Node with @serenity-kit/opaque's client API:
 *
 *   - registration + login: client and server session keys match
 *   - wrong password: client finishLogin fails; server rejects a bogus proof (null)
 *   - a proof from another login session is rejected (null)
 *   - unknown user: loginStart gives a (fake) response, not an error; login fails
 *   - malformed input: OpaqueInputError (HTTP 400 here), not a crash
 *
 *   node scripts/opaque-workerd-check.ts
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { Miniflare } from "miniflare";
import * as opaque from "@serenity-kit/opaque";

const root = fileURLToPath(new URL("..", import.meta.url));
const REQUEST_TIMEOUT_MS = 30_000;

// Worker under test. Records and login states live in isolate memory (test only).
const WORKER_SOURCE = `
import { createServerSetup, registrationResponse, loginStart, loginFinish, OpaqueInputError } from "./edge/lib/opaque.ts";

const enc = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
const dec = (text) => {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};
const json = (value, status = 200) => Response.json(value, { status });
const records = new Map();
const logins = new Map();

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    const body = request.method === "POST" ? await request.json() : {};
    try {
      switch (pathname) {
        case "/setup":
          return json({ serverSetup: await createServerSetup() });
        case "/register/start":
          return json({ response: enc(await registrationResponse(body.serverSetup, body.username, dec(body.request))) });
        case "/register/finish":
          records.set(body.username, dec(body.record));
          return json({ ok: true });
        case "/login/start": {
          const record = records.get(body.username) ?? null;
          const { state, response } = await loginStart(body.serverSetup, body.username, record, dec(body.request));
          const loginId = crypto.randomUUID();
          logins.set(loginId, state);
          return json({ loginId, response: enc(response), stateLength: state.length });
        }
        case "/login/finish": {
          const state = logins.get(body.loginId);
          logins.delete(body.loginId);
          if (state === undefined) return json({ error: "unknown loginId" }, 404);
          const key = await loginFinish(state, dec(body.finalization));
          return json({ sessionKey: key === null ? null : enc(key) });
        }
        default:
          return json({ error: "not found" }, 404);
      }
    } catch (err) {
      if (err instanceof OpaqueInputError) return json({ error: err.name, field: err.field, message: err.message }, 400);
      return json({ error: String(err), stack: err instanceof Error ? err.stack : undefined }, 500);
    }
  },
};
`;

interface Reply {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

let failures = 0;
function check(cond: boolean, label: string, detail?: unknown): void {
  if (cond) {
    console.log(`  ok   ${label}`);
  } else {
    failures++;
    console.log(`  FAIL ${label}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== "string") throw new Error(`expected string "${key}" in ${JSON.stringify(body)}`);
  return v;
}

const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");

interface WorkerBundle {
  /** ESM entry module source. */
  main: string;
  /** External `.wasm` modules: module name (relative to the entry) -> bytes. */
  wasm: Map<string, Uint8Array<ArrayBuffer>>;
}

async function bundleWorker(): Promise<WorkerBundle> {
  const wasmFiles = new Map<string, string>(); // module name -> absolute source path
  const result = await esbuild.build({
    stdin: { contents: WORKER_SOURCE, resolveDir: root, sourcefile: "opaque-check-worker.js", loader: "js" },
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    logLevel: "warning",
    plugins: [
      {
        name: "external-compiled-wasm",
        setup(build) {
          // Keep `*.wasm` imports external, as sibling modules of the bundle (like
          // wrangler does), so workerd loads them as precompiled WebAssembly.Modules.
          build.onResolve({ filter: /\.wasm$/ }, (args) => {
            const abs = resolve(args.resolveDir, args.path);
            const name = basename(abs);
            const prev = wasmFiles.get(name);
            if (prev !== undefined && prev !== abs) throw new Error(`wasm basename clash: ${prev} vs ${abs}`);
            wasmFiles.set(name, abs);
            return { path: `./${name}`, external: true };
          });
        },
      },
    ],
  });
  const [out] = result.outputFiles;
  if (out === undefined) throw new Error("esbuild produced no output");
  if (wasmFiles.size === 0) throw new Error("bundle imports no .wasm module: not using the CompiledWasm path?");
  const wasm = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const [name, abs] of wasmFiles) wasm.set(name, new Uint8Array(readFileSync(abs)));
  return { main: out.text, wasm };
}

async function main(): Promise<void> {
  // Make sure edge/generated is current (silent unless it changed something).
  execFileSync(process.execPath, [join(root, "scripts", "extract-opaque-wasm.ts")], { stdio: "inherit" });

  const bundle = await bundleWorker();
  // Miniflare 5 (alpha) options: v4's `{ modules: true, scriptPath, modulesRules }`
  // is rejected (needs `workers: [...]`, and convertV4MiniflareOptions refuses
  // `modulesRules`). The v5 way is an explicit module manifest; "wasm" is the
  // CompiledWasm module type (default export = WebAssembly.Module).
  const modules: Record<string, { type: "esm" | "wasm"; contents: string | Uint8Array<ArrayBuffer> }> = {
    "worker.js": { type: "esm", contents: bundle.main },
  };
  for (const [name, bytes] of bundle.wasm) modules[name] = { type: "wasm", contents: bytes };
  const mf = new Miniflare({
    workers: [
      {
        config: {
          name: "opaque-workerd-check",
          type: "worker",
          compatibilityDate: "2026-08-01",
          manifest: { mainModule: "worker.js", modules },
        },
      },
    ],
  });
  try {
    await mf.ready;
    await opaque.ready;

    const post = async (path: string, payload: Record<string, unknown>): Promise<Reply> => {
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${path}: no response after ${REQUEST_TIMEOUT_MS} ms (wasm compiled at runtime?)`)),
          REQUEST_TIMEOUT_MS,
        );
      });
      try {
        const res = await Promise.race([
          mf.dispatchFetch(`http://opaque.test${path}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(payload),
          }),
          timeout,
        ]);
        const body = (await res.json()) as Record<string, unknown>;
        return { status: res.status, body, ms: performance.now() - started };
      } finally {
        clearTimeout(timer);
      }
    };

    console.log("opaque in workerd:");
    const setupReply = await post("/setup", {});
    check(setupReply.status === 200, `createServerSetup in workerd (first call, incl. wasm init: ${setupReply.ms.toFixed(0)} ms)`, setupReply.body);
    const serverSetup = str(setupReply.body, "serverSetup");
    const serverPublicKey = opaque.server.getPublicKey(serverSetup); // throws if the setup is not valid

    const username = "alice@example.com";
    const password = "correct horse battery staple";

    // Registration.
    const reg = opaque.client.startRegistration({ password });
    const regStart = await post("/register/start", {
      serverSetup,
      username,
      request: reg.registrationRequest,
    });
    check(regStart.status === 200, `registration start (${regStart.ms.toFixed(0)} ms)`, regStart.body);
    const regFinish = opaque.client.finishRegistration({
      password,
      clientRegistrationState: reg.clientRegistrationState,
      registrationResponse: str(regStart.body, "response"),
    });
    check(regFinish.serverStaticPublicKey === serverPublicKey, "client sees the server's static public key");
    const stored = await post("/register/finish", { username, record: regFinish.registrationRecord });
    check(stored.status === 200, "registration record stored");

    type LoginAttempt = { loginId: string; response: string; stateLength: unknown; clientLoginState: string; ms: number };
    const startLogin = async (user: string, pw: string): Promise<LoginAttempt> => {
      const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: pw });
      const r = await post("/login/start", { serverSetup, username: user, request: startLoginRequest });
      if (r.status !== 200) throw new Error(`/login/start ${r.status}: ${JSON.stringify(r.body)}`);
      return { loginId: str(r.body, "loginId"), response: str(r.body, "response"), stateLength: r.body["stateLength"], clientLoginState, ms: r.ms };
    };

    // Correct password.
    const t0 = performance.now();
    const good = await startLogin(username, password);
    check(good.stateLength === 128, `login start (${good.ms.toFixed(0)} ms round trip)`, good.stateLength);
    const goodClient = opaque.client.finishLogin({ password, clientLoginState: good.clientLoginState, loginResponse: good.response });
    check(goodClient !== undefined, "client accepts the server's login response");
    if (goodClient === undefined) throw new Error("cannot continue without a client login result");
    const goodFinish = await post("/login/finish", { loginId: good.loginId, finalization: goodClient.finishLoginRequest });
    const loginMs = performance.now() - t0;
    check(
      goodFinish.status === 200 && goodFinish.body["sessionKey"] === goodClient.sessionKey,
      `login: server session key == client session key (${Buffer.from(goodClient.sessionKey, "base64url").length} bytes; ` +
        `finish ${goodFinish.ms.toFixed(0)} ms round trip; whole login incl. client argon2 ${loginMs.toFixed(0)} ms)`,
      goodFinish.body,
    );

    // Wrong password: the client cannot even produce a finalization...
    const wrong = await startLogin(username, "Tr0ub4dor&3");
    const wrongClient = opaque.client.finishLogin({ password: "Tr0ub4dor&3", clientLoginState: wrong.clientLoginState, loginResponse: wrong.response });
    check(wrongClient === undefined, "wrong password: client finishLogin fails");
    // ...and whatever it sends instead is rejected by the server (null, not an error).
    const wrongFinish = await post("/login/finish", { loginId: wrong.loginId, finalization: b64u(randomBytes(64)) });
    check(wrongFinish.status === 200 && wrongFinish.body["sessionKey"] === null, "wrong password: server loginFinish returns null", wrongFinish.body);

    // A valid proof from another session does not verify against this state.
    const a = await startLogin(username, password);
    const b = await startLogin(username, password);
    const aClient = opaque.client.finishLogin({ password, clientLoginState: a.clientLoginState, loginResponse: a.response });
    if (aClient === undefined) throw new Error("client login A failed");
    const crossed = await post("/login/finish", { loginId: b.loginId, finalization: aClient.finishLoginRequest });
    check(crossed.status === 200 && crossed.body["sessionKey"] === null, "proof from another session: null", crossed.body);

    // Unknown user: a fake response of the same shape, then failure.
    const ghost = await startLogin("mallory@example.com", password);
    const ghostResponseLen = Buffer.from(ghost.response, "base64url").length;
    const realResponseLen = Buffer.from(good.response, "base64url").length;
    check(
      ghostResponseLen === realResponseLen && ghost.stateLength === good.stateLength,
      `unknown user: login response (fake) instead of an error (${ghostResponseLen} vs ${realResponseLen} bytes)`,
    );
    const ghostClient = opaque.client.finishLogin({ password, clientLoginState: ghost.clientLoginState, loginResponse: ghost.response });
    check(ghostClient === undefined, "unknown user: client finishLogin fails like a wrong password");
    const ghostFinish = await post("/login/finish", { loginId: ghost.loginId, finalization: b64u(randomBytes(64)) });
    check(ghostFinish.status === 200 && ghostFinish.body["sessionKey"] === null, "unknown user: server loginFinish returns null", ghostFinish.body);

    // Malformed input: typed error, not null and not a crash.
    const bad = await startLogin(username, password);
    const badFinish = await post("/login/finish", { loginId: bad.loginId, finalization: b64u(randomBytes(3)) });
    check(
      badFinish.status === 400 && badFinish.body["error"] === "OpaqueInputError" && badFinish.body["field"] === "finishLoginRequest",
      "malformed finalization: OpaqueInputError",
      badFinish.body,
    );
    const emptyReq = await post("/register/start", { serverSetup, username, request: "" });
    check(emptyReq.status === 400 && emptyReq.body["field"] === "registrationRequest", "empty registration request: OpaqueInputError", emptyReq.body);
    const badRegReq = await post("/register/start", { serverSetup, username, request: b64u(randomBytes(32)) });
    check(
      (badRegReq.status === 400 && badRegReq.body["field"] === "registrationRequest") || badRegReq.status === 200,
      `random 32-byte registration request: ${badRegReq.status === 400 ? "OpaqueInputError" : "accepted (valid point by chance)"}`,
      badRegReq.body,
    );

    // The worker's wasm instance must still be healthy after all the failures.
    const again = await startLogin(username, password);
    const againClient = opaque.client.finishLogin({ password, clientLoginState: again.clientLoginState, loginResponse: again.response });
    if (againClient === undefined) throw new Error("client login after failures failed");
    const againFinish = await post("/login/finish", { loginId: again.loginId, finalization: againClient.finishLoginRequest });
    check(againFinish.body["sessionKey"] === againClient.sessionKey, "login still works after failures");
  } finally {
    await mf.dispose();
  }

  if (failures > 0) {
    console.log(`${failures} check(s) failed`);
    process.exitCode = 1;
  } else {
    console.log("all checks passed");
  }
}

await main();
