// Per-connection session state. A connection becomes authenticated by OpaqueLoginFinish or
// SessionResume on it; afterwards the front attaches the edge-minted caller assertion to every
// RPC and re-validates the session (SessionResume) when the assertion nears expiry.
import { Method, Status, pb, type SessionGrant, assertionDeviceHex } from "../proto/index.ts";
import type { Relay, RelayRequest } from "./relay.ts";

export type AssertionResult = { ok: true; assertion: string } | { ok: false; ended: boolean };

/** Refresh this long before the assertion expires, so in-flight RPCs never carry a stale one. */
const REFRESH_MARGIN_MS = 30_000;

export class ConnectionSession {
  private token: Uint8Array;
  private deviceId: Uint8Array;
  private grant: SessionGrant;
  private refreshing: Promise<"refreshed" | "refused" | "unavailable"> | undefined;

  constructor(token: Uint8Array, deviceId: Uint8Array, grant: SessionGrant) {
    this.token = token;
    this.deviceId = deviceId;
    this.grant = grant;
  }

  get identityKeyHex(): string {
    return this.grant.identityKeyHex;
  }

  /** The device the edge bound this session to (from its assertion), to match revocations. */
  get deviceHex(): string | undefined {
    return assertionDeviceHex(this.grant.assertion);
  }

  /** The session is over at its expiry, whatever the connection does. */
  ended(now: number): boolean {
    return now >= this.grant.sessionExpiresAt;
  }

  /** The assertion is due for re-validation (which also notices a revoked session). */
  refreshDue(now: number): boolean {
    return now >= this.grant.assertionExpiresAt - REFRESH_MARGIN_MS;
  }

  /**
   * A usable assertion, re-validated through the edge when it nears expiry. `ended` means the
   * session is over (expired, revoked); otherwise the edge could not be asked right now and the
   * session stays bound.
   */
  async assertion(
    relay: Pick<Relay, "call">,
    base: Pick<RelayRequest, "connectionId" | "clientAddr">,
    now: number,
  ): Promise<AssertionResult> {
    if (this.ended(now)) return { ok: false, ended: true };
    if (!this.refreshDue(now)) return { ok: true, assertion: this.grant.assertion };
    this.refreshing ??= this.refresh(relay, base).finally(() => (this.refreshing = undefined));
    const outcome = await this.refreshing;
    if (outcome === "refreshed") return { ok: true, assertion: this.grant.assertion };
    if (outcome === "refused") return { ok: false, ended: true };
    // A passing edge failure: the current assertion is still good until it expires.
    return now < this.grant.assertionExpiresAt
      ? { ok: true, assertion: this.grant.assertion }
      : { ok: false, ended: false };
  }

  private async refresh(
    relay: Pick<Relay, "call">,
    base: Pick<RelayRequest, "connectionId" | "clientAddr">,
  ): Promise<"refreshed" | "refused" | "unavailable"> {
    const payload = pb.SessionResumeRequest.encode({ accessToken: this.token, deviceId: this.deviceId }).finish();
    const res = await relay.call({ ...base, methodId: Method.SessionResume, requestId: 0, payload });
    if (res.status === Status.Ok && res.session) {
      this.grant = res.session;
      return "refreshed";
    }
    return res.status === Status.Unauthorized ? "refused" : "unavailable";
  }

  /** Builds the session a successful login/resume response establishes, or undefined. */
  static fromGrant(
    methodId: number,
    request: Uint8Array,
    response: Uint8Array,
    grant: SessionGrant,
  ): ConnectionSession | undefined {
    try {
      if (methodId === Method.OpaqueLoginFinish) {
        const token = pb.OpaqueLoginFinishResponse.decode(response).sessionToken;
        return new ConnectionSession(token, new Uint8Array(0), grant);
      }
      if (methodId === Method.SessionResume) {
        const req = pb.SessionResumeRequest.decode(request);
        return new ConnectionSession(req.accessToken, req.deviceId, grant);
      }
    } catch {
      return undefined;
    }
    return undefined;
  }
}
