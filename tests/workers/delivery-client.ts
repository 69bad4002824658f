// Delivery calls through the RPC layer for the workers tests, and payloads of any size
// (crypto.getRandomValues fills at most 64 KiB per call).
import { runInDurableObject } from "cloudflare:test";
import { Method, pb } from "../../proto/index.ts";
import { sha256 } from "../../edge/lib/crypto.ts";
import { toHex } from "../../proto/util/hex.ts";
import { ok, queueStub, rpc, type RpcResult } from "./helpers.ts";

export const MiB = 1024 * 1024;
export const NONE = new Uint8Array(0);

/** `size` bytes that differ per seed and position. */
export function bulk(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 17 + (i >>> 8)) & 0xff;
  return out;
}

/** Compares large payloads without printing megabytes on failure. */
export async function digest(bytes: Uint8Array): Promise<string> {
  return toHex(await sha256(bytes));
}

type EnqueueExtra = Omit<Parameters<typeof pb.EnqueueRequest.encode>[0], "recipientKey" | "payload">;

export function enqueueAs(
  caller: Uint8Array,
  recipient: Uint8Array,
  payload: Uint8Array,
  extra: EnqueueExtra = {},
): Promise<RpcResult> {
  return rpc(Method.Enqueue, pb.EnqueueRequest.encode({ recipientKey: recipient, payload, ...extra }).finish(), {
    caller,
  });
}

export async function sent(
  res: Promise<RpcResult>,
): Promise<{ seq: number; duplicate: boolean; deliveryProof: Uint8Array }> {
  const r = ok(await res, pb.EnqueueResponse);
  return { seq: Number(r.seq), duplicate: r.duplicate, deliveryProof: r.deliveryProof };
}

export function batchAs(
  caller: Uint8Array,
  recipients: Uint8Array[],
  payload: Uint8Array,
  extra: Omit<EnqueueExtra, "ttlSecs"> = {},
): Promise<RpcResult> {
  return rpc(
    Method.BatchEnqueue,
    pb.BatchEnqueueRequest.encode({ recipientKeys: recipients, payload, ...extra }).finish(),
    { caller },
  );
}

export async function inbox(
  owner: Uint8Array,
  opts: { channelId?: Uint8Array; limit?: number } = {},
): Promise<{ seq: number; data: Uint8Array }[]> {
  const res = ok(
    await rpc(Method.Fetch, pb.FetchRequest.encode({ recipientKey: owner, ...opts }).finish(), { caller: owner }),
    pb.FetchResponse,
  );
  return res.payloads.map((e) => ({ seq: Number(e.seq), data: e.data ?? NONE }));
}

export async function ackAs(owner: Uint8Array, seqUpTo: number, channelId: Uint8Array = NONE): Promise<void> {
  ok(
    await rpc(Method.Ack, pb.AckRequest.encode({ recipientKey: owner, seqUpTo, channelId }).finish(), {
      caller: owner,
    }),
    pb.AckResponse,
  );
}

/** Runs SQL inside the recipient's queue object (to check what it stores). */
export function queueSql<T extends Record<string, SqlStorageValue>>(
  recipient: Uint8Array,
  query: string,
  ...params: SqlStorageValue[]
): Promise<T[]> {
  return runInDurableObject(queueStub(recipient), (_instance, state) =>
    state.storage.sql.exec<T>(query, ...params).toArray(),
  );
}
