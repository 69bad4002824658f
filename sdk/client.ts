// The qpq client SDK: typed calls for every implemented method, OPAQUE registration/login,
// session resume. Errors come back as QpqCallError carrying the wire status; failures below the
// protocol (connection, stream, deadline, local queue limits) as TransportError.
import * as opaque from "@serenity-kit/opaque";
import { Method, PushEvent, Status, pb, decodeError, statusName } from "../proto/index.ts";
import { QuicTransport, type ConnectOptions } from "./transport.ts";
import { WsTransport, type WsConnectOptions } from "./ws-transport.ts";
import type { PushFrame, ResponseFrame } from "../proto/index.ts";
import { KtVerificationError, verifyResolution, type VerifiedResolution } from "../proto/kt/verify.ts";
import type { TreeHead } from "../proto/kt/tree-head.ts";
import { Blobs } from "./blob.ts";
import { Recovery } from "./recovery.ts";
import { P2P } from "./p2p.ts";

export { TransportError } from "./request-slots.ts";
export { KtVerificationError } from "../proto/kt/verify.ts";

/**
 * What a client trusts about the server's key-transparency log: the log's Ed25519 key (pinned,
 * or taken from Health on first use) and the newest tree head it verified. Persist it between
 * runs (the CLI keeps it in the profile) so every later head must extend this one.
 */
export interface KtTrust {
  publicKey?: Uint8Array;
  head?: TreeHead;
}

/**
 * What QpqClient needs from a transport: QUIC (native) or the WebSocket bridge. `request`
 * queues beyond the connection's limits and never throws outside its promise.
 */
export interface Transport {
  request(methodId: number, payload: Uint8Array): Promise<ResponseFrame>;
  onPush(handler: (frame: PushFrame) => void): () => void;
  close(): Promise<void>;
}

export class QpqCallError extends Error {
  readonly status: number;
  readonly retryAfterMs: number;
  constructor(method: number, status: number, message: string, retryAfterMs: number) {
    super(`${statusName(status)} (${status}) from method ${method}: ${message}`);
    this.name = "QpqCallError";
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
}
interface Decoder<T> {
  decode(bytes: Uint8Array): T;
}

const b64u = {
  encode: (b: Uint8Array) => Buffer.from(b).toString("base64url"),
  decode: (s: string) => new Uint8Array(Buffer.from(s, "base64url")),
};

export interface DeviceInfo {
  deviceId: Uint8Array;
  name: string;
  registeredAtMs: number;
  lastSeenMs: number;
  /** The device of the session that asked. */
  current: boolean;
}

/** A fresh device id: 16 random bytes. */
export function newDeviceId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

export interface Envelope {
  seq: number;
  data: Uint8Array;
}

function envelopes(list: { seq?: number | null; data?: Uint8Array | null }[]): Envelope[] {
  return list.map((e) => ({ seq: e.seq ?? 0, data: e.data ?? new Uint8Array(0) }));
}

export class QpqClient<T extends Transport = Transport> {
  readonly transport: T;
  /** Identity key of this connection's session, once logged in or resumed. */
  identityKey: Uint8Array | undefined;
  sessionToken: Uint8Array | undefined;
  /** Updated by every verified resolution. */
  kt: KtTrust = {};
  /**
   * Log keys of other regions, pinned on first use per domain (name@domain answers are signed by
   * the home region's log, not this region's).
   */
  remoteKt = new Map<string, Uint8Array>();
  /** The last resolution that verified (what resolveUser checked). */
  lastResolution: VerifiedResolution | undefined;
  /** Blobs (600/601): chunked, resumable upload and ranged download (sdk/blob.ts). */
  readonly blobs: Blobs = new Blobs(this);
  /** Recovery bundles (750-752; fetch works before login) (sdk/recovery.ts). */
  readonly recovery: Recovery = new Recovery(this);
  /** Direct peer endpoints (800/801) (sdk/p2p.ts). */
  readonly p2p: P2P = new P2P(this);

  constructor(transport: T) {
    this.transport = transport;
  }

  static async connect(opts: ConnectOptions): Promise<QpqClient<QuicTransport>> {
    return new QpqClient(await QuicTransport.connect(opts));
  }

  /** Over the WebSocket bridge, e.g. ws://127.0.0.1:5002/qpq. */
  static async connectWebSocket(url: string, opts?: WsConnectOptions): Promise<QpqClient<WsTransport>> {
    return new QpqClient(await WsTransport.connect(url, opts));
  }

  /** Raw call: status and payload bytes, no exception for non-Ok statuses. */
  async raw(methodId: number, payload: Uint8Array): Promise<{ status: number; payload: Uint8Array }> {
    const res = await this.transport.request(methodId, payload);
    return { status: res.status, payload: res.payload };
  }

  async call<Req, Res>(methodId: number, reqCodec: Codec<Req>, req: Req, resCodec: Decoder<Res>): Promise<Res> {
    const res = await this.raw(methodId, reqCodec.encode(req).finish());
    if (res.status !== Status.Ok) {
      const e = decodeError(res.payload);
      throw new QpqCallError(methodId, res.status, e.message, e.retryAfterMs);
    }
    return resCodec.decode(res.payload);
  }

  // ── Auth ──────────────────────────────────────────────────────────────

  /** OPAQUE registration binding `identityKey` to `username`. Returns false if taken. */
  async register(username: string, password: string, identityKey: Uint8Array): Promise<boolean> {
    await opaque.ready;
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const start = await this.call(
      Method.OpaqueRegisterStart,
      pb.OpaqueRegisterStartRequest,
      { username, request: b64u.decode(registrationRequest) },
      pb.OpaqueRegisterStartResponse,
    );
    const { registrationRecord } = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse: b64u.encode(start.response),
      password,
    });
    const finish = await this.call(
      Method.OpaqueRegisterFinish,
      pb.OpaqueRegisterFinishRequest,
      { username, upload: b64u.decode(registrationRecord), identityKey },
      pb.OpaqueRegisterFinishResponse,
    );
    return finish.success;
  }

  /**
   * OPAQUE login; on success this connection is authenticated and the token is returned. The
   * session belongs to `deviceId`, a device registered with registerDevice (default: the
   * account's default device).
   */
  async login(
    username: string,
    password: string,
    identityKey: Uint8Array,
    deviceId: Uint8Array = new Uint8Array(0),
  ): Promise<Uint8Array> {
    await opaque.ready;
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    const start = await this.call(
      Method.OpaqueLoginStart,
      pb.OpaqueLoginStartRequest,
      { username, request: b64u.decode(startLoginRequest) },
      pb.OpaqueLoginStartResponse,
    );
    const result = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: b64u.encode(start.response),
      password,
    });
    // A wrong password fails on the client already; tell the server so its login state is consumed.
    const finalization = result ? b64u.decode(result.finishLoginRequest) : crypto.getRandomValues(new Uint8Array(64));
    const finish = await this.call(
      Method.OpaqueLoginFinish,
      pb.OpaqueLoginFinishRequest,
      { username, finalization, identityKey, deviceId },
      pb.OpaqueLoginFinishResponse,
    );
    this.identityKey = identityKey;
    this.sessionToken = finish.sessionToken;
    return finish.sessionToken;
  }

  /** Binds an existing session token to this (new) connection. */
  async resume(
    token: Uint8Array,
    deviceId: Uint8Array = new Uint8Array(0),
  ): Promise<{ identityKey: Uint8Array; expiresAtMs: number }> {
    const res = await this.call(
      Method.SessionResume,
      pb.SessionResumeRequest,
      { accessToken: token, deviceId },
      pb.SessionResumeResponse,
    );
    this.identityKey = res.identityKey;
    this.sessionToken = token;
    return { identityKey: res.identityKey, expiresAtMs: res.expiresAtMs };
  }

  // ── Delivery ──────────────────────────────────────────────────────────

  enqueue(req: {
    recipientKey: Uint8Array;
    payload: Uint8Array;
    channelId?: Uint8Array;
    ttlSecs?: number;
    messageId?: Uint8Array;
  }) {
    return this.call(Method.Enqueue, pb.EnqueueRequest, req, pb.EnqueueResponse);
  }

  batchEnqueue(req: {
    recipientKeys: Uint8Array[];
    payload: Uint8Array;
    channelId?: Uint8Array;
    ttlSecs?: number;
    messageId?: Uint8Array;
  }) {
    return this.call(Method.BatchEnqueue, pb.BatchEnqueueRequest, req, pb.BatchEnqueueResponse);
  }

  async fetch(req: { channelId?: Uint8Array; limit?: number; deviceId?: Uint8Array } = {}): Promise<Envelope[]> {
    const res = await this.call(Method.Fetch, pb.FetchRequest, { ...req, recipientKey: this.self() }, pb.FetchResponse);
    return envelopes(res.payloads);
  }

  async fetchWait(req: {
    timeoutMs: number;
    channelId?: Uint8Array;
    limit?: number;
    deviceId?: Uint8Array;
  }): Promise<Envelope[]> {
    const res = await this.call(
      Method.FetchWait,
      pb.FetchWaitRequest,
      { ...req, recipientKey: this.self() },
      pb.FetchWaitResponse,
    );
    return envelopes(res.payloads);
  }

  async peek(req: { channelId?: Uint8Array; limit?: number; deviceId?: Uint8Array } = {}): Promise<Envelope[]> {
    const res = await this.call(Method.Peek, pb.PeekRequest, { ...req, recipientKey: this.self() }, pb.PeekResponse);
    return envelopes(res.payloads);
  }

  async ack(seqUpTo: number, req: { channelId?: Uint8Array; deviceId?: Uint8Array } = {}): Promise<void> {
    await this.call(Method.Ack, pb.AckRequest, { ...req, seqUpTo, recipientKey: this.self() }, pb.AckResponse);
  }

  // ── Keys ──────────────────────────────────────────────────────────────

  /** Uploads a KeyPackage; `lastResort` replaces the identity's one last-resort package (RFC 9750). */
  async uploadKeyPackage(pkg: Uint8Array, opts: { lastResort?: boolean } = {}): Promise<Uint8Array> {
    return (
      await this.call(
        Method.UploadKeyPackage,
        pb.UploadKeyPackageRequest,
        { identityKey: this.self(), package: pkg, lastResort: opts.lastResort ?? false },
        pb.UploadKeyPackageResponse,
      )
    ).fingerprint;
  }

  /** Pops the peer's oldest KeyPackage; empty bytes when none is left. */
  async fetchKeyPackage(identityKey: Uint8Array): Promise<Uint8Array> {
    return (await this.fetchKeyPackageEntry(identityKey)).package;
  }

  /**
   * As fetchKeyPackage, and says whether it is the peer's last-resort package (served only when
   * no single-use one is left, and to others too: prefer replacing it once used).
   */
  async fetchKeyPackageEntry(identityKey: Uint8Array): Promise<{ package: Uint8Array; lastResort: boolean }> {
    const res = await this.call(
      Method.FetchKeyPackage,
      pb.FetchKeyPackageRequest,
      { identityKey },
      pb.FetchKeyPackageResponse,
    );
    return { package: res.package, lastResort: res.lastResort };
  }

  async uploadHybridKey(hybridPublicKey: Uint8Array): Promise<void> {
    await this.call(
      Method.UploadHybridKey,
      pb.UploadHybridKeyRequest,
      { identityKey: this.self(), hybridPublicKey },
      pb.UploadHybridKeyResponse,
    );
  }

  async fetchHybridKey(identityKey: Uint8Array): Promise<Uint8Array> {
    return (
      await this.call(Method.FetchHybridKey, pb.FetchHybridKeyRequest, { identityKey }, pb.FetchHybridKeyResponse)
    ).hybridPublicKey;
  }

  async fetchHybridKeys(identityKeys: Uint8Array[]): Promise<Uint8Array[]> {
    return (
      await this.call(Method.FetchHybridKeys, pb.FetchHybridKeysRequest, { identityKeys }, pb.FetchHybridKeysResponse)
    ).keys;
  }

  // ── Channels and directory ────────────────────────────────────────────

  createDirectChannel(peerKey: Uint8Array) {
    return this.call(Method.CreateChannel, pb.CreateChannelRequest, { peerKey }, pb.CreateChannelResponse);
  }

  createGroupChannel(memberKeys: Uint8Array[], name = "") {
    return this.call(Method.CreateChannel, pb.CreateChannelRequest, { memberKeys, name }, pb.CreateChannelResponse);
  }

  /** Removes a member from a group channel (creator/admin), or leaves it (own key). */
  async removeMember(channelId: Uint8Array, memberKey: Uint8Array): Promise<void> {
    await this.call(Method.RemoveMember, pb.RemoveMemberRequest, { channelId, memberKey }, pb.RemoveMemberResponse);
  }

  /** The verified identity key of `username` (see resolveUserVerified). */
  async resolveUser(username: string): Promise<Uint8Array> {
    return (await this.resolveUserVerified(username)).identityKey;
  }

  /**
   * Resolves `username` and verifies the answer against the key-transparency log: the tree head
   * is signed by the pinned log key (taken from Health on first use when none is pinned), the
   * inclusion proof leads from the name's binding to that head, and the head extends the last
   * one verified. Throws KtVerificationError, and keeps the trusted head, when any check fails.
   */
  async resolveUserVerified(
    username: string,
  ): Promise<VerifiedResolution & { pinnedNow: boolean; previous?: TreeHead }> {
    const at = username.lastIndexOf("@");
    if (at >= 0) return this.resolveRemoteVerified(username, username.slice(0, at), username.slice(at + 1));
    let pinnedNow = false;
    if (!this.kt.publicKey) {
      const key = (await this.health()).ktPublicKey;
      if (key.length !== 32)
        throw new KtVerificationError("unsigned-head", "the server publishes no key-transparency key");
      this.kt.publicKey = key;
      pinnedNow = true;
    }
    const previous = this.kt.head;
    const res = await this.call(
      Method.ResolveUser,
      pb.ResolveUserRequest,
      { username, knownTreeSize: previous?.treeSize ?? 0 },
      pb.ResolveUserResponse,
    );
    const verified = await verifyResolution(username, res, this.kt.publicKey, previous);
    this.kt.head = {
      treeSize: verified.head.treeSize,
      root: verified.head.root,
      timestampMs: verified.head.timestampMs,
    };
    this.lastResolution = verified;
    return { ...verified, pinnedNow, previous };
  }

  /**
   * name@domain: the home region's answer, verified against that region's log key (pinned here on
   * first use per domain; a different key later is refused). No consistency proof across calls.
   */
  private async resolveRemoteVerified(
    address: string,
    name: string,
    domain: string,
  ): Promise<VerifiedResolution & { pinnedNow: boolean; previous?: TreeHead }> {
    const res = await this.call(
      Method.ResolveUser,
      pb.ResolveUserRequest,
      { username: address, knownTreeSize: 0 },
      pb.ResolveUserResponse,
    );
    const key = res.homeKtPublicKey ?? new Uint8Array(0);
    if (key.length !== 32) throw new KtVerificationError("unsigned-head", `the answer for ${address} names no log key`);
    const pinned = this.remoteKt.get(domain.toLowerCase());
    if (pinned && Buffer.compare(pinned, key) !== 0) {
      throw new KtVerificationError("unsigned-head", `the log key of ${domain} is not the one pinned before`);
    }
    const verified = await verifyResolution(name, res, key, undefined);
    this.remoteKt.set(domain.toLowerCase(), key);
    this.lastResolution = verified;
    return { ...verified, pinnedNow: !pinned };
  }

  checkRevocation(identityKey: Uint8Array) {
    return this.call(Method.CheckRevocation, pb.CheckRevocationRequest, { identityKey }, pb.CheckRevocationResponse);
  }

  /** Revokes this session's own identity key in the key-transparency log; returns the leaf index. */
  async revokeKey(reason = "user_revoked"): Promise<number> {
    const res = await this.call(
      Method.RevokeKey,
      pb.RevokeKeyRequest,
      { identityKey: this.self(), reason },
      pb.RevokeKeyResponse,
    );
    return res.leafIndex;
  }

  auditKeyTransparency(req: { start?: number; end?: number; firstSize?: number }) {
    return this.call(Method.AuditKeyTransparency, pb.AuditKeyTransparencyRequest, req, pb.AuditKeyTransparencyResponse);
  }

  resolveIdentity(identityKey: Uint8Array) {
    return this.call(Method.ResolveIdentity, pb.ResolveIdentityRequest, { identityKey }, pb.ResolveIdentityResponse);
  }

  // ── Devices and account ───────────────────────────────────────────────

  /**
   * Registers a device of this account (at most 5, the default included) so that a login can
   * name it; `deviceId` is chosen by the client (1-64 bytes; newDeviceId() makes one).
   * Registering a known id again renames it. Returns whether it was new.
   */
  async registerDevice(deviceId: Uint8Array, name = ""): Promise<boolean> {
    return (
      await this.call(Method.RegisterDevice, pb.RegisterDeviceRequest, { deviceId, name }, pb.RegisterDeviceResponse)
    ).wasNew;
  }

  /** The account's devices; `current` marks this session's device. */
  async listDevices(): Promise<{ devices: DeviceInfo[]; currentDeviceId: Uint8Array }> {
    const res = await this.call(Method.ListDevices, pb.ListDevicesRequest, {}, pb.ListDevicesResponse);
    return {
      devices: res.devices.map((d) => ({
        deviceId: d.deviceId ?? new Uint8Array(0),
        name: d.name ?? "",
        registeredAtMs: Number(d.registeredAtMs ?? 0),
        lastSeenMs: Number(d.lastSeenMs ?? 0),
        current: d.current ?? false,
      })),
      currentDeviceId: res.currentDeviceId,
    };
  }

  /** Revokes a device: its sessions end, its cursors and push token go, its slot is free. */
  async revokeDevice(deviceId: Uint8Array): Promise<void> {
    await this.call(Method.RevokeDevice, pb.RevokeDeviceRequest, { deviceId }, pb.RevokeDeviceResponse);
  }

  /** Stores this device's APNs/FCM token (an empty token removes it). */
  async registerPushToken(platform: "apns" | "fcm", token: Uint8Array): Promise<void> {
    await this.call(
      Method.RegisterPushToken,
      pb.RegisterPushTokenRequest,
      { platform, token },
      pb.RegisterPushTokenResponse,
    );
  }

  /**
   * Deletes this account and everything the server holds for it. Call again with the same
   * session if it failed part way: a repeat finishes the deletion.
   */
  async deleteAccount(): Promise<void> {
    await this.call(Method.DeleteAccount, pb.DeleteAccountRequest, {}, pb.DeleteAccountResponse);
    this.identityKey = undefined;
    this.sessionToken = undefined;
  }

  // ── Push ──────────────────────────────────────────────────────────────

  /** PushNewMessage events for this connection's identity; returns an unsubscribe function. */
  onNewMessage(
    handler: (event: { channelId: Uint8Array; seq: number; size: number; payload: Uint8Array }) => void,
  ): () => void {
    return this.transport.onPush((frame) => {
      if (frame.eventType !== PushEvent.NewMessage) return;
      try {
        const e = pb.PushNewMessage.decode(frame.payload);
        handler({ channelId: e.channelId, seq: e.seq, size: e.size, payload: e.payload });
      } catch {
        /* malformed push: ignore */
      }
    });
  }

  health() {
    return this.call(Method.Health, pb.HealthRequest, {}, pb.HealthResponse);
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  private self(): Uint8Array {
    if (!this.identityKey) throw new QpqCallError(0, Status.Unauthorized, "log in or resume first", 0);
    return this.identityKey;
  }
}
