// 802 Health: unauthenticated and cheap.
import { Method, pb } from "../../proto/index.ts";
import { unary, type MethodTable } from "../rpc.ts";

export const healthMethods: MethodTable = {
  [Method.Health]: unary("none", pb.HealthRequest, pb.HealthResponse, async (ctx) => ({
    status: "ok",
    uptimeSecs: Math.floor((Date.now() - ctx.deps.startedAt) / 1000),
    version: ctx.deps.version,
    deliveryProofKey: (await ctx.deps.signing).publicKey,
    ktPublicKey: await ctx.deps.ktPublicKey,
  })),
};
