// The relay against the REAL local edge (workerd through Miniflare, as `npm start` runs it): a
// request sent after any idle gap reaches the edge. A relay that kept idle connections longer
// than the edge does wrote some requests into connections the edge was just closing
// (UND_ERR_SOCKET → Unavailable for methods that are not retried, e.g. Login).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEdge, type LocalEdge } from "../../local/edge.ts";
import { EdgeRelay, RELAY_KEEPALIVE_MS, type RelayRequest } from "../../quic-front/relay.ts";
import { silentLogger } from "../../proto/util/log.ts";
import { Method, Status, pb } from "../../proto/index.ts";

let edge: LocalEdge;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "qpq-keepalive-"));
  edge = await startEdge({ dataDir, logger: silentLogger });
});

afterAll(async () => {
  await edge?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** How long the edge keeps an idle keep-alive connection after its last response, in ms. */
async function edgeIdleCloseMs(): Promise<number> {
  const { hostname, port } = new URL(edge.url);
  const socket = connect(Number(port), hostname);
  try {
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const answered = new Promise<number>((resolve) => socket.once("data", () => resolve(performance.now())));
    const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now())));
    socket.write("GET /health HTTP/1.1\r\nhost: edge\r\n\r\n");
    const since = await answered;
    const gone = await Promise.race([
      closed,
      new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 30_000)),
    ]);
    return gone - since;
  } finally {
    socket.destroy();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// LoginFinish is never re-sent by the relay, so a request written into a closing connection
// shows as Unavailable instead of being hidden by a retry. An empty username is answered
// BadRequest by the edge without touching any state.
const probe: RelayRequest = {
  methodId: Method.OpaqueLoginFinish,
  requestId: 1,
  payload: pb.OpaqueLoginFinishRequest.encode({ username: "" }).finish(),
  connectionId: "keepalive-test:1",
  clientAddr: "127.0.0.1:1",
};

/** One relay (its own pool): a request, `gapMs` of silence, another request; both statuses. */
async function acrossGap(gapMs: number): Promise<{ gapMs: number; statuses: number[] }> {
  const relay = new EdgeRelay({
    edgeUrl: edge.url,
    frontSecret: edge.secrets.FRONT_SECRET,
    rpcTimeoutMs: 30_000,
    logger: silentLogger,
  });
  try {
    const first = await relay.call(probe);
    await sleep(gapMs);
    const second = await relay.call(probe);
    return { gapMs, statuses: [first.status, second.status] };
  } finally {
    await relay.close();
  }
}

describe("relay keep-alive against the real edge", () => {
  it("drops idle connections before the edge does and reaches the edge after every idle gap", async () => {
    const idleClose = await edgeIdleCloseMs();
    expect(idleClose, "the edge closes idle connections").toBeLessThan(30_000);
    // The relay lets go first, with room for a busy event loop.
    expect(RELAY_KEEPALIVE_MS).toBeLessThanOrEqual(idleClose / 2);

    // Every gap from 0 to past the edge's idle close, and 1 ms steps through the last 300 ms
    // before it (where a request would race the edge's close) and around the relay's own
    // keep-alive; each on its own connection, all at once, so the whole sweep takes one gap.
    const gaps = new Set<number>();
    for (let g = 0; g <= idleClose + 1_000; g += 100) gaps.add(Math.round(g));
    for (let g = idleClose - 300; g <= idleClose + 50; g += 1) gaps.add(Math.round(g));
    for (let g = RELAY_KEEPALIVE_MS - 50; g <= RELAY_KEEPALIVE_MS + 50; g += 2) gaps.add(Math.round(g));
    const results = await Promise.all([...gaps].map(acrossGap));

    const failed = results.filter((r) => r.statuses.some((s) => s !== Status.BadRequest));
    expect(failed, `idle close ${idleClose.toFixed(0)} ms`).toEqual([]);
    expect(results.length).toBeGreaterThan(400);
  }, 60_000);
});
