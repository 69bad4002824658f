// 802 Health: unauthenticated and cheap.
import { Method, pb } from "../../proto/index.ts";
import { unary, type MethodTable } from "../rpc.ts";

export const healthMethods: MethodTable = {
  // startedAt is when this isolate built its deps (its first request): isolates start on demand
  // and are replaced freely, so this is the isolate's age, not the deployment's. A front that
  // relays this answer puts its own uptime and version into uptime_secs/version and front_*.
  [Method.Health]: unary("none", pb.HealthRequest, pb.HealthResponse, async (ctx) => ({
    status: "ok",
    uptimeSecs: Math.floor((Date.now() - ctx.deps.startedAt) / 1000),
    version: ctx.deps.version,
    edgeUptimeSecs: Math.floor((Date.now() - ctx.deps.startedAt) / 1000),
    edgeVersion: ctx.deps.version,
    deliveryProofKey: (await ctx.deps.signing).publicKey,
    ktPublicKey: await ctx.deps.ktPublicKey,
  })),
};
