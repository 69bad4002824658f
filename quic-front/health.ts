// Health through a front: the edge's answer, with the front's own uptime and version added, so
// an operator sees both parts (a front restart and an edge isolate restart are different events).
import { Status, pb } from "../proto/index.ts";
import type { RelayResponse } from "./relay.ts";
import { FRONT_VERSION } from "./version.ts";

export interface FrontIdentity {
  /** Whole seconds since the front started. */
  uptimeSecs: number;
  version: string;
}

/**
 * The edge's Ok HealthResponse with front_uptime_secs/front_version set, and uptime_secs/version
 * (what clients that predate the split read) describing the front, the process they talk to.
 * Anything else passes unchanged.
 */
export function withFrontHealth(res: RelayResponse, front: FrontIdentity): RelayResponse {
  if (res.status !== Status.Ok) return res;
  let edge: ReturnType<typeof pb.HealthResponse.decode>;
  try {
    edge = pb.HealthResponse.decode(res.payload);
  } catch {
    return res; // not ours to repair; the client sees what the edge sent
  }
  const answer = pb.HealthResponse.create({
    ...edge,
    uptimeSecs: front.uptimeSecs,
    version: front.version,
    frontUptimeSecs: front.uptimeSecs,
    frontVersion: front.version,
  });
  return { ...res, payload: pb.HealthResponse.encode(answer).finish() };
}

export { FRONT_VERSION };
