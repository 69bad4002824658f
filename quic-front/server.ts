// The front: one gateway, fed by the QUIC listener and (optionally) the WebSocket bridge.
import type { FrontConfig } from "./config.ts";
import type { TlsMaterial } from "./cert.ts";
import { Gateway } from "./gateway.ts";
import { QuicListener } from "./quic-listener.ts";
import { LeanQuicListener } from "./quic/listener.ts";
import { WsListener } from "./ws-listener.ts";
import type { EdgeRelay } from "./relay.ts";
import type { FrontMetrics } from "./metrics.ts";
import type { Logger } from "../proto/util/log.ts";
import type { HookRunner } from "./hooks.ts";

/** How long the QUIC listener may take to close its connections once drained. */
const QUIC_STOP_GRACE_MS = 3_000;

export interface FrontOptions {
  config: FrontConfig;
  tls: TlsMaterial;
  logger: Logger;
  metrics?: FrontMetrics;
  relay?: EdgeRelay;
  hooks?: HookRunner;
}

export class QpqFront {
  readonly gateway: Gateway;
  private readonly quic: QuicListener | LeanQuicListener;
  private readonly ws: WsListener | undefined;
  private readonly config: FrontConfig;

  constructor(opts: FrontOptions) {
    this.config = opts.config;
    this.gateway = new Gateway(opts);
    const c = opts.config;
    const limits = {
      transferTimeoutMs: c.transferTimeoutMs,
      minTransferBytesPerSecond: c.minTransferBytesPerSecond,
      connectionBufferBytes: c.connectionBufferBytes,
    };
    this.quic =
      c.quicDriver === "lean"
        ? new LeanQuicListener(this.gateway, opts.tls, opts.logger, { ...limits, idleTimeoutMs: c.idleTimeoutMs })
        : new QuicListener(this.gateway, opts.tls, opts.logger, { ...limits, idleTimeoutMs: c.idleTimeoutMs });
    if (opts.config.wsListen) {
      // Plain ws:// only with the development certificate on loopback; otherwise wss:// with the
      // configured certificate.
      const secure = !opts.tls.selfSigned;
      this.ws = new WsListener(this.gateway, opts.logger, secure ? opts.tls : undefined);
    }
  }

  get metrics(): FrontMetrics {
    return this.gateway.metrics;
  }

  get port(): number {
    return this.quic.port;
  }

  get listenHost(): string {
    return this.quic.host;
  }

  /** The WebSocket bridge's URL, when enabled. */
  get wsUrl(): string | undefined {
    if (!this.ws || !this.config.wsListen) return undefined;
    const host = this.config.wsListen.host.includes(":") ? `[${this.config.wsListen.host}]` : this.config.wsListen.host;
    return `${this.ws.secure ? "wss" : "ws"}://${host}:${this.ws.port}/qpq`;
  }

  get openConnections(): number {
    return this.gateway.openConnections;
  }

  async start(): Promise<void> {
    await this.quic.start(this.config.host, this.config.port);
    try {
      if (this.ws && this.config.wsListen) await this.ws.start(this.config.wsListen.host, this.config.wsListen.port);
    } catch (err) {
      await this.quic.stop();
      throw err;
    }
  }

  /**
   * Graceful stop: refuse new RPCs, answer parked FetchWaits, let in-flight RPCs finish up to
   * the drain timeout, close. Bounded: the drain timeout plus a few seconds at most.
   */
  async stop(): Promise<void> {
    await this.gateway.drain();
    await this.ws?.stop();
    await this.gateway.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.quic.stop(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, QUIC_STOP_GRACE_MS).unref())),
    ]).finally(() => clearTimeout(timer));
  }
}
