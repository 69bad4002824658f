// Relays one RPC to the edge over HTTP (relay contract in docs/protocol.md): a keep-alive pool,
// the front secret, the caller assertion, and a retry only where a second attempt cannot have a
// second effect.
import { Pool } from "undici";
import {
  Method,
  Status,
  isIdempotent,
  pb,
  encodeError,
  isStatusCode,
  parseSessionGrant,
  RelayHeader,
  type StatusCode,
  type SessionGrant,
} from "../proto/index.ts";
import type { Logger } from "../proto/util/log.ts";

export interface RelayRequest {
  methodId: number;
  requestId: number;
  payload: Uint8Array;
  connectionId: string;
  clientAddr: string;
  /** Caller assertion of the connection's session, if any. */
  assertion?: string;
  /** Extra time the edge may hold the call (FetchWait). */
  extraTimeoutMs?: number;
  /** Sealed-sender mode, Enqueue/BatchEnqueue: the sending address's tag (quic-front/sealed-sender.ts). */
  sealedSenderTag?: string;
}

export interface RelayResponse {
  status: StatusCode;
  payload: Uint8Array;
  session?: SessionGrant;
  queueDepth?: number;
}

/** What the gateway needs of a relay: one call per RPC, and closing. EdgeRelay is the one over HTTP. */
export interface Relay {
  /** Never rejects: failures come back as an error response (Unavailable, DeadlineExceeded). */
  call(req: RelayRequest): Promise<RelayResponse>;
  /** Waits for the calls in progress, then releases the connections. */
  close(): Promise<void>;
}

export interface RelayOptions {
  edgeUrl: string;
  frontSecret: string;
  rpcTimeoutMs: number;
  connections?: number;
  /** How long an idle keep-alive connection to the edge is kept; default RELAY_KEEPALIVE_MS. */
  keepAliveMs?: number;
  logger: Logger;
  onError?: (kind: string) => void;
}

const RETRYABLE_CODES = new Set(["UND_ERR_SOCKET", "ECONNRESET", "ECONNREFUSED", "EPIPE", "UND_ERR_CLOSED"]);

/**
 * Idle time after which the relay drops a keep-alive connection to the edge. It must stay well
 * below the edge's own idle close, so the relay never writes a request into a connection the edge
 * is closing: workerd closes an idle HTTP/1.1 connection 5 s after its last response (measured,
 * tests/e2e/relay-keepalive.test.ts), and Node's http server does too by default. The margin
 * covers event-loop delay on a busy front.
 */
export const RELAY_KEEPALIVE_MS = 2_000;

/**
 * Auth steps whose repetition has no second effect, so a failure before any response byte may
 * be retried like a read: SessionResume only reads; OpaqueRegisterStart and OpaqueLoginStart
 * replace the pending state of their (connection, username) and the client continues with the
 * answer it receives, which is the last one (should a lost first attempt land after it, the
 * login fails and is repeated; nothing is stored twice). The finish steps consume state and are
 * never re-sent.
 */
const RESENDABLE_AUTH = new Set<number>([Method.SessionResume, Method.OpaqueRegisterStart, Method.OpaqueLoginStart]);

function errorCode(err: unknown): string {
  if (err && typeof err === "object" && "code" in err && typeof err.code === "string") return err.code;
  return "unknown";
}

export function errorResponse(status: StatusCode, message: string, retryAfterMs = 0): RelayResponse {
  return { status, payload: encodeError({ message, retryAfterMs }) };
}

/** Enqueue/BatchEnqueue become idempotent when they carry a message id (field 5). */
function carriesMessageId(req: RelayRequest): boolean {
  try {
    if (req.methodId === Method.Enqueue) return pb.EnqueueRequest.decode(req.payload).messageId.length > 0;
    if (req.methodId === Method.BatchEnqueue) return pb.BatchEnqueueRequest.decode(req.payload).messageId.length > 0;
  } catch {
    return false;
  }
  return false;
}

export class EdgeRelay implements Relay {
  private readonly pool: Pool;
  private readonly opts: RelayOptions;

  constructor(opts: RelayOptions) {
    this.opts = opts;
    const keepAliveMs = opts.keepAliveMs ?? RELAY_KEEPALIVE_MS;
    this.pool = new Pool(opts.edgeUrl, {
      connections: opts.connections ?? 64,
      pipelining: 1,
      keepAliveTimeout: keepAliveMs,
      // A Keep-Alive hint from the edge may shorten the idle time (minus a second for transit),
      // never lengthen it.
      keepAliveMaxTimeout: keepAliveMs,
      keepAliveTimeoutThreshold: 1_000,
      // Long-polls are bounded by per-request timeouts below.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  async call(req: RelayRequest): Promise<RelayResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(req);
      } catch (err) {
        const code = errorCode(err);
        if (err instanceof DOMException && err.name === "TimeoutError") {
          this.opts.onError?.("timeout");
          return errorResponse(Status.DeadlineExceeded, "the edge did not answer in time");
        }
        // A failure before any response byte may be retried only if a second attempt cannot
        // have a second effect: refused connections never reached the edge at all.
        const safe =
          code === "ECONNREFUSED" ||
          isIdempotent(req.methodId) ||
          RESENDABLE_AUTH.has(req.methodId) ||
          carriesMessageId(req);
        if (attempt < 3 && RETRYABLE_CODES.has(code) && safe) continue;
        this.opts.onError?.(code);
        this.opts.logger.warn("relay failed", { method: req.methodId, requestId: req.requestId, code, attempt });
        return errorResponse(Status.Unavailable, "the edge cannot be reached", 1000);
      }
    }
  }

  private async once(req: RelayRequest): Promise<RelayResponse> {
    const headers: Record<string, string> = {
      [RelayHeader.frontAuth]: this.opts.frontSecret,
      [RelayHeader.requestId]: String(req.requestId),
      [RelayHeader.clientAddr]: req.clientAddr,
      [RelayHeader.connection]: req.connectionId,
      "content-type": "application/x-protobuf",
    };
    if (req.assertion) headers[RelayHeader.caller] = req.assertion;
    if (req.sealedSenderTag) headers[RelayHeader.sealedSender] = req.sealedSenderTag;
    const res = await this.pool.request({
      path: `/rpc/${req.methodId}`,
      method: "POST",
      headers,
      body: req.payload,
      signal: AbortSignal.timeout(this.opts.rpcTimeoutMs + (req.extraTimeoutMs ?? 0)),
    });
    const body = new Uint8Array(await res.body.arrayBuffer());
    if (res.statusCode !== 200) {
      this.opts.logger.error("edge refused the relay", { status: res.statusCode, method: req.methodId });
      this.opts.onError?.(`http_${res.statusCode}`);
      return errorResponse(Status.Unavailable, "the edge refused the request", 1000);
    }
    // Only a plain decimal code counts: Number() would read "" (and "0x0") as 0, i.e. Ok.
    const header = res.headers[RelayHeader.status];
    const raw = typeof header === "string" && /^\d{1,3}$/.test(header) ? Number(header) : Number.NaN;
    const status: StatusCode = isStatusCode(raw) ? raw : Status.Internal;
    const depth = res.headers[RelayHeader.queueDepth];
    return {
      status,
      payload: body,
      session: parseSessionGrant(res.headers[RelayHeader.session] as string | undefined),
      queueDepth: typeof depth === "string" ? Number(depth) : undefined,
    };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
