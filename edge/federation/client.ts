// Outgoing edge-to-edge calls: POST <peer url>/federation/rpc/<method>, protobuf body, signed
// (signature.ts). The answer is HTTP 200 with the wire status in x-qpq-status, like /rpc.
import { QpqError, RelayHeader, Status, decode, decodeError, encode, unavailable } from "../../proto/index.ts";
import type { StatusCode } from "../../proto/wire/status.ts";
import type { FederationDeps } from "./config.ts";
import type { Peer } from "./peers.ts";
import { signRequest } from "./signature.ts";
import { peerTarget } from "./peer-url.ts";
import { FEDERATION_LIMITS } from "./limits.ts";

/** Statuses a retry cannot fix: the outbox sets such a relay aside, and it holds back nobody. */
export const PERMANENT: ReadonlySet<number> = new Set([Status.BadRequest, Status.NotFound, Status.Forbidden]);

export interface PeerAnswer {
  status: StatusCode;
  body: Uint8Array;
  retryAfterMs: number;
  /** The error text for a non-Ok answer. */
  message: string;
}

/** One signed request; transport failures (peer down, timeout, not a federation answer) throw. */
export async function callPeer(
  fed: Pick<FederationDeps, "domain" | "signing">,
  peer: Pick<Peer, "url">,
  target: number | "relay-bundle",
  body: Uint8Array,
): Promise<PeerAnswer> {
  const url = peerTarget(peer, target);
  const headers = await signRequest({
    method: "POST",
    path: url.pathname,
    body,
    keyId: fed.domain,
    privateKey: (await fed.signing).privateKey,
    created: Math.floor(Date.now() / 1000),
  });
  const res = await fetch(url, {
    method: "POST",
    body,
    headers: { ...headers, "content-type": "application/x-protobuf" },
    signal: AbortSignal.timeout(FEDERATION_LIMITS.requestTimeoutMs),
  });
  const statusHeader = res.headers.get(RelayHeader.status);
  if (res.status !== 200 || statusHeader === null) {
    await res.body?.cancel();
    throw new Error(`peer answered HTTP ${res.status} without a federation status`);
  }
  const announced = Number(res.headers.get("content-length") ?? 0);
  if (announced > FEDERATION_LIMITS.answerMaxBytes) {
    await res.body?.cancel();
    throw new Error("peer answer too large");
  }
  const answer = new Uint8Array(await res.arrayBuffer());
  if (answer.length > FEDERATION_LIMITS.answerMaxBytes) throw new Error("peer answer too large");
  const status = Number(statusHeader) as StatusCode;
  if (status === Status.Ok) return { status, body: answer, retryAfterMs: 0, message: "" };
  let message = "";
  try {
    message = decodeError(answer).message;
  } catch {
    message = "";
  }
  return { status, body: answer, retryAfterMs: Number(res.headers.get(RelayHeader.retryAfter) ?? 0), message };
}

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(reader: Uint8Array): T;
}

/**
 * A proxied call on behalf of a client (902-904): the peer's refusal is passed on with its
 * status; an unreachable peer is Unavailable.
 */
export async function proxyCall<Req, Res>(
  fed: FederationDeps,
  peer: Peer,
  method: number,
  reqType: Codec<Req>,
  req: Req,
  resType: Codec<Res>,
): Promise<Res> {
  let answer: PeerAnswer;
  try {
    answer = await callPeer(fed, peer, method, encode(reqType, req));
  } catch {
    throw unavailable(`the home region ${peer.domain} cannot be reached right now`, 5_000);
  }
  if (answer.status !== Status.Ok) {
    throw new QpqError(answer.status, `home region ${peer.domain}: ${answer.message}`, answer.retryAfterMs);
  }
  return decode(resType, answer.body, "peer answer");
}
