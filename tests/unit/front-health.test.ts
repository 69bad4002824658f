// Health through the front reports the front and the edge separately: the front's uptime counts
// from the front's start, whatever the edge (an isolate started on demand) says about itself.
import { afterEach, describe, expect, it } from "vitest";
import { Method, Status, pb } from "../../proto/index.ts";
import { withFrontHealth } from "../../quic-front/health.ts";
import { FRONT_VERSION } from "../../quic-front/version.ts";
import { open, rpc, runCleanups, scriptedEdge, start } from "./support/gateway-harness.ts";
import { ManualClock } from "./support/manual-clock.ts";

afterEach(runCleanups);

const edgeHealth = pb.HealthResponse.encode({
  status: "ok",
  uptimeSecs: 3,
  version: "9.9.9",
  edgeUptimeSecs: 3,
  edgeVersion: "9.9.9",
  deliveryProofKey: new Uint8Array(32).fill(7),
}).finish();

describe("Health at the front", () => {
  it("adds the front's uptime (from its own start) and version to the edge's answer", async () => {
    const clock = new ManualClock();
    const { gw } = await start({
      clock,
      edge: scriptedEdge({ other: (call) => (call.methodId === Method.Health ? { payload: edgeHealth } : {}) }),
    });
    clock.advance(125_400);
    const conn = await open(gw);
    const res = await rpc(gw, conn, Method.Health);
    expect(res.status).toBe(Status.Ok);
    const health = pb.HealthResponse.decode(res.payload);
    expect(health).toMatchObject({
      status: "ok",
      frontUptimeSecs: 125,
      frontVersion: FRONT_VERSION,
      edgeUptimeSecs: 3,
      edgeVersion: "9.9.9",
      // What clients that predate the split read: the process they talk to.
      uptimeSecs: 125,
      version: FRONT_VERSION,
    });
    expect(health.deliveryProofKey).toEqual(new Uint8Array(32).fill(7));
  });

  it("the front's version is the package's", async () => {
    const { readFileSync } = await import("node:fs");
    expect(FRONT_VERSION).toBe(
      JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version,
    );
  });

  it("passes errors and undecodable answers through unchanged", () => {
    const err = { status: Status.Unavailable, payload: new Uint8Array([1, 2]) };
    expect(withFrontHealth(err, { uptimeSecs: 1, version: "1" })).toBe(err);
    const junk = { status: Status.Ok, payload: new Uint8Array([0xff, 0xff, 0xff]) };
    expect(withFrontHealth(junk, { uptimeSecs: 1, version: "1" })).toBe(junk);
  });
});
