// Scaffolding for Gateway unit tests: a Gateway with a fake TransportLink in front of the test
// edge (a real HTTP server), scripted logins, and helpers to make RPCs and fake plugin hooks.
import { expect, vi } from "vitest";
import { Gateway, type ClientConnection, type TransportLink } from "../../../quic-front/gateway.ts";
import { configFromEnv, type FrontConfig } from "../../../quic-front/config.ts";
import { silentLogger, type Logger } from "../../../proto/util/log.ts";
import type { Clock } from "../../../quic-front/clock.ts";
import type { HookRunner } from "../../../quic-front/hooks.ts";
import type { HookName } from "../../../plugins/api/index.ts";
import {
  FrameError,
  Method,
  RelayHeader as H,
  Status,
  decodeResponse,
  formatSessionGrant,
  pb,
  type ResponseFrame,
  type SessionGrant,
} from "../../../proto/index.ts";
import { startTestEdge, type EdgeCall, type EdgeHandler, type EdgeReply, type TestEdge } from "./test-edge.ts";
import { acceptPush, type PushEdge } from "./push-edge.ts";

export const IDENTITY = "c0".repeat(32);
export const TOKEN = new Uint8Array(32).fill(0x7e);
export const MINUTE = 60_000;

const cleanups: (() => Promise<void>)[] = [];

/** Call from afterEach: stops what start() started, last first. */
export async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export function grant(
  assertion: string,
  assertionTtlMs = 10 * MINUTE,
  sessionTtlMs = 60 * MINUTE,
  now = Date.now(),
): SessionGrant {
  return {
    assertion,
    identityKeyHex: IDENTITY,
    sessionExpiresAt: now + sessionTtlMs,
    assertionExpiresAt: now + assertionTtlMs,
  };
}

export interface EdgeScript {
  /** The grant a successful OpaqueLoginFinish returns. */
  login?: () => SessionGrant;
  /** SessionResume's answer; default: Ok with a fresh grant "A-resumed". */
  resume?: (call: EdgeCall) => EdgeReply;
  /** Any other method; default: Ok with an empty payload. */
  other?: EdgeHandler;
}

/** An edge that logs in, resumes, and answers everything else as the script says. */
export function scriptedEdge(script: EdgeScript = {}): EdgeHandler {
  return (call, attempt) => {
    if (call.methodId === Method.OpaqueLoginFinish) {
      return {
        payload: pb.OpaqueLoginFinishResponse.encode({ sessionToken: TOKEN }).finish(),
        headers: { [H.session]: formatSessionGrant((script.login ?? (() => grant("A-login")))()) },
      };
    }
    if (call.methodId === Method.SessionResume) {
      if (script.resume) return script.resume(call);
      return {
        payload: pb.SessionResumeResponse.encode({}).finish(),
        headers: { [H.session]: formatSessionGrant(grant("A-resumed")) },
      };
    }
    return script.other ? script.other(call, attempt) : {};
  };
}

export interface Harness {
  edge: TestEdge;
  gw: Gateway;
  config: FrontConfig;
  /** The edge's push side, when started with `push: true`. */
  push: PushEdge;
}

export interface StartOptions {
  edge?: EdgeHandler;
  config?: Partial<FrontConfig>;
  hooks?: HookRunner;
  clock?: Clock;
  logger?: Logger;
  /** Accept the gateway's push WebSockets (otherwise the edge refuses them). */
  push?: boolean;
}

export async function start(opts: StartOptions = {}): Promise<Harness> {
  const edge = await startTestEdge(opts.edge ?? scriptedEdge());
  const push = opts.push ? acceptPush(edge) : undefined;
  const config = configFromEnv(
    { QPQ_EDGE_URL: edge.url, QPQ_FRONT_SECRET: "s" },
    { frontId: "front-t", ...opts.config },
  );
  const gw = new Gateway({ config, logger: opts.logger ?? silentLogger, hooks: opts.hooks, clock: opts.clock });
  // Edge first (its push sockets before its server, which waits for them), so nothing the
  // gateway still awaits can keep stop() waiting.
  cleanups.push(
    () => gw.stop(),
    () => edge.close(),
    async () => push?.close(),
  );
  return {
    edge,
    gw,
    config,
    get push(): PushEdge {
      if (!push) throw new Error("start({ push: true }) to use the push side");
      return push;
    },
  };
}

export function fakeLink(remoteAddr = "203.0.113.5:50000") {
  const pushes: Uint8Array[] = [];
  return {
    transport: "quic",
    remoteAddr,
    pushes,
    sendPush: async (frame: Uint8Array) => void pushes.push(frame),
    close: vi.fn((_reason: string) => {}),
  } satisfies TransportLink & { pushes: Uint8Array[] };
}

export async function open(gw: Gateway, link: TransportLink = fakeLink()): Promise<ClientConnection> {
  const conn = await gw.open(link);
  if (!conn) throw new Error("the gateway refused the connection");
  return conn;
}

let nextRequestId = 1;
export async function rpc(
  gw: Gateway,
  conn: ClientConnection,
  methodId: number,
  payload: Uint8Array = new Uint8Array(0),
): Promise<ResponseFrame> {
  const requestId = nextRequestId++;
  const res = decodeResponse(await gw.serve(conn, { methodId, requestId, payload }));
  if (res instanceof FrameError) throw res;
  expect(res.requestId).toBe(requestId);
  return res;
}

export async function login(gw: Gateway, conn: ClientConnection): Promise<void> {
  const payload = pb.OpaqueLoginFinishRequest.encode({ username: "alice", finalization: new Uint8Array([1]) }).finish();
  const res = await rpc(gw, conn, Method.OpaqueLoginFinish, payload);
  expect(res.status).toBe(Status.Ok);
}

export const fetchPayload = () =>
  pb.FetchRequest.encode({ recipientKey: Buffer.from(IDENTITY, "hex"), limit: 10 }).finish();
export const enqueuePayload = () =>
  pb.EnqueueRequest.encode({
    recipientKey: new Uint8Array(32).fill(0xaa),
    payload: new Uint8Array(100),
    channelId: new Uint8Array(16).fill(3),
  }).finish();

type Decision = { allow: true } | { allow: false; reason: string; plugin: string };

/** A HookRunner that exports exactly the hooks given and records every call. */
export function fakeHooks(decide: Partial<Record<HookName, () => Decision>>) {
  const calls: { hook: HookName; event: unknown }[] = [];
  const asked: HookName[] = [];
  const runner: HookRunner = {
    has(hook) {
      asked.push(hook);
      return decide[hook] !== undefined;
    },
    async call(hook, event) {
      calls.push({ hook, event });
      const d = decide[hook];
      if (!d) throw new Error(`call() for ${hook}, which has() denied`);
      return d();
    },
  };
  return { runner, calls, asked };
}
