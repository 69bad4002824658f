// Sealed sender at the front (quic-front/sealed-sender.ts, gateway, hooks): an Enqueue or
// BatchEnqueue carries the tag of the sending address and nothing else does; on_message_send
// events lose senderIdentity; the tag is per address (an IPv6 client per /64) and per process; a
// front whose mode differs from its edge's refuses to start.
import { afterEach, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import { Method, RelayHeader as H, Status, pb } from "../../proto/index.ts";
import { SealedSenderTags, checkEdgeSealedSender } from "../../quic-front/sealed-sender.ts";
import { configFromEnv } from "../../quic-front/config.ts";
import { recordingLogger } from "../support/system.ts";
import {
  IDENTITY,
  enqueuePayload,
  fakeHooks,
  fakeLink,
  login,
  open,
  rpc,
  runCleanups,
  start,
} from "./support/gateway-harness.ts";

afterEach(runCleanups);

describe("sealed-sender tags", () => {
  it("are one per client address (IPv6 per /64), 32 hex, and differ between processes", () => {
    const tags = new SealedSenderTags();
    const t = tags.tagOf("198.51.100.7:4000");
    expect(t).toMatch(/^[0-9a-f]{32}$/);
    expect(tags.tagOf("198.51.100.7:5000")).toBe(t);
    expect(tags.tagOf("[::ffff:198.51.100.7]:6000")).toBe(t);
    expect(tags.tagOf("198.51.100.8:4000")).not.toBe(t);
    expect(tags.tagOf("[2001:db8:1:2::5]:1")).toBe(tags.tagOf("[2001:db8:1:2:ffff::9]:2"));
    expect(tags.tagOf("[2001:db8:1:3::5]:1")).not.toBe(tags.tagOf("[2001:db8:1:2::5]:1"));
    expect(new SealedSenderTags().tagOf("198.51.100.7:4000")).not.toBe(t);
  });
});

describe("the gateway in sealed-sender mode", () => {
  it("sends the address tag with Enqueue and BatchEnqueue only, and plugins see no senderIdentity", async () => {
    const hooks = fakeHooks({ on_message_send: () => ({ allow: true }) });
    const { gw, edge } = await start({ hooks: hooks.runner, config: { sealedSender: true } });
    const conn = await open(gw, fakeLink("198.51.100.7:4000"));
    await login(gw, conn);
    expect((await rpc(gw, conn, Method.Enqueue, enqueuePayload())).status).toBe(Status.Ok);
    const batch = pb.BatchEnqueueRequest.encode({
      recipientKeys: [new Uint8Array(32).fill(1)],
      payload: new Uint8Array(5),
    }).finish();
    expect((await rpc(gw, conn, Method.BatchEnqueue, batch)).status).toBe(Status.Ok);
    await rpc(gw, conn, Method.Fetch);

    const other = await open(gw, fakeLink("198.51.100.7:4001"));
    await login(gw, other);
    await rpc(gw, other, Method.Enqueue, enqueuePayload());

    const [first, again] = edge.callsTo(Method.Enqueue).map((c) => c.headers[H.sealedSender]);
    expect(first).toMatch(/^[0-9a-f]{32}$/);
    expect(again).toBe(first); // same address, another connection: the same sender to the edge
    expect(edge.callsTo(Method.BatchEnqueue)[0].headers[H.sealedSender]).toBe(first);
    expect(edge.callsTo(Method.Fetch)[0].headers[H.sealedSender]).toBeUndefined();
    expect(edge.callsTo(Method.OpaqueLoginFinish)[0].headers[H.sealedSender]).toBeUndefined();
    expect(hooks.calls).toHaveLength(3);
    for (const c of hooks.calls) expect(c.event).not.toHaveProperty("senderIdentity");
  });

  it("without the mode, sends no tag and plugins see the sender", async () => {
    const hooks = fakeHooks({ on_message_send: () => ({ allow: true }) });
    const { gw, edge } = await start({ hooks: hooks.runner });
    const conn = await open(gw);
    await login(gw, conn);
    await rpc(gw, conn, Method.Enqueue, enqueuePayload());
    expect(edge.callsTo(Method.Enqueue)[0].headers[H.sealedSender]).toBeUndefined();
    expect(hooks.calls[0].event).toMatchObject({ senderIdentity: IDENTITY });
  });
});

describe("front and edge agree on the mode", () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  async function edgeSaying(body: string): Promise<string> {
    server = createServer((req, res) => {
      res.writeHead(req.url === "/.well-known/qpq" ? 200 : 404, { "content-type": "application/json" });
      res.end(body);
    }).listen(0, "127.0.0.1");
    await once(server, "listening");
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    return `http://127.0.0.1:${address.port}`;
  }

  it("refuses to start when the edge's mode differs, starts when it matches", async () => {
    const url = await edgeSaying(JSON.stringify({ sealed_sender: true }));
    const logger = recordingLogger();
    await expect(checkEdgeSealedSender(url, false, logger)).rejects.toThrow(
      /QPQ_SEALED_SENDER=false here, SEALED_SENDER=true/,
    );
    await expect(checkEdgeSealedSender(url, true, logger)).resolves.toBeUndefined();
  });

  it("starts, with a warning, when the edge cannot say (the edge refuses mismatched enqueues itself)", async () => {
    const logger = recordingLogger();
    await checkEdgeSealedSender("http://127.0.0.1:9", true, logger, 2_000);
    const url = await edgeSaying(JSON.stringify({ version: "old" }));
    await checkEdgeSealedSender(url, true, logger);
    expect(logger.entries.filter((e) => e.level === "warn")).toHaveLength(2);
  });

  it("reads QPQ_SEALED_SENDER strictly", () => {
    const base = { QPQ_EDGE_URL: "http://127.0.0.1:9", QPQ_FRONT_SECRET: "s" };
    expect(configFromEnv(base).sealedSender).toBe(false);
    expect(configFromEnv({ ...base, QPQ_SEALED_SENDER: "true" }).sealedSender).toBe(true);
    expect(configFromEnv({ ...base, QPQ_SEALED_SENDER: "1" }).sealedSender).toBe(true);
    expect(() => configFromEnv({ ...base, QPQ_SEALED_SENDER: "on" })).toThrow(/QPQ_SEALED_SENDER/);
  });
});
