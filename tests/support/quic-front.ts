// A QUIC front (gateway + QUIC listener) on 127.0.0.1 in front of the scriptable HTTP test edge:
// real QUIC, real TLS, real relay, with limits small enough for tests to reach them quickly.
import { generateDevCertificate } from "../../quic-front/cert.ts";
import { configFromEnv, type FrontConfig } from "../../quic-front/config.ts";
import { Gateway } from "../../quic-front/gateway.ts";
import { silentLogger } from "../../proto/util/log.ts";
import { QuicListener } from "../../quic-front/quic-listener.ts";
import type { RequestLimits } from "../../quic-front/request-limits.ts";
import { LeanQuicListener } from "../../quic-front/quic/listener.ts";
import { QuicTransport, type ConnectOptions } from "../../sdk/transport.ts";
import { startTestEdge, type EdgeHandler, type TestEdge } from "../unit/support/test-edge.ts";

export interface TestFront {
  listener: QuicListener | LeanQuicListener;
  gateway: Gateway;
  edge: TestEdge;
  port: number;
  /** The development CA the server's certificate is signed by: what clients pin. */
  certPem: string;
  connect(opts?: Partial<ConnectOptions>): Promise<QuicTransport>;
  stop(): Promise<void>;
}

export interface TestFrontOptions {
  /** Request limits of the QUIC listener. */
  limits?: Partial<RequestLimits>;
  /** Front configuration as environment variables (QPQ_RPC_BURST, ...). */
  env?: Record<string, string>;
  config?: Partial<FrontConfig>;
  edge?: EdgeHandler;
}

export async function startTestFront(opts: TestFrontOptions = {}): Promise<TestFront> {
  const edge = await startTestEdge(opts.edge);
  const config = configFromEnv(
    {
      QPQ_LISTEN: "127.0.0.1:0",
      // Test connections never log in; they must not be closed for that while a test runs.
      QPQ_AUTH_TIMEOUT: "3600s",
      // Which QUIC server path the front runs (quic-front/config.ts); the process's choice by default.
      QPQ_QUIC_DRIVER: process.env.QPQ_QUIC_DRIVER ?? "",
      ...opts.env,
      QPQ_EDGE_URL: edge.url,
      QPQ_FRONT_SECRET: "test",
    },
    opts.config,
  );
  const gateway = new Gateway({ config, logger: silentLogger });
  const { caPem, certPem, keyPem } = await generateDevCertificate();
  const tls = { caPem, certPem, keyPem, selfSigned: true };
  const listener =
    config.quicDriver === "lean"
      ? new LeanQuicListener(gateway, tls, silentLogger, opts.limits)
      : new QuicListener(gateway, tls, silentLogger, opts.limits);
  await listener.start("127.0.0.1", 0);
  const transports: QuicTransport[] = [];
  return {
    listener,
    gateway,
    edge,
    certPem: caPem,
    port: listener.port,
    async connect(connectOpts = {}) {
      const t = await QuicTransport.connect({ host: "127.0.0.1", port: listener.port, ca: caPem, ...connectOpts });
      transports.push(t);
      return t;
    },
    async stop() {
      await Promise.allSettled(transports.map((t) => t.close()));
      await gateway.stop();
      await listener.stop();
      await edge.close();
    },
  };
}
