// quiche configuration: signature algorithms both sides offer; the server's TLS material, ALPN, transport.
import { quiche, type Config } from "./native.ts";

/** Signature algorithms BoringSSL offers (as @matrixai/quic configures them). */
export const SIGALGS = [
  "ecdsa_secp256r1_sha256",
  "ecdsa_secp384r1_sha384",
  "ecdsa_secp521r1_sha512",
  "ed25519",
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
  "rsa_pss_rsae_sha512",
  "rsa_pkcs1_sha256",
  "rsa_pkcs1_sha384",
  "rsa_pkcs1_sha512",
].join(":");

export interface ServerTransportSettings {
  certPem: string;
  keyPem: string;
  alpn: string;
  /** Concurrent client-initiated bidirectional streams per connection. */
  maxStreamsBidi: number;
  /** A connection with no packets for this long is closed (quiche's max_idle_timeout). */
  idleTimeoutMs: number;
  /** Per-stream receive window: how much of one request the client may send ahead. */
  streamWindow?: number;
  /** Per-connection receive window. */
  connectionWindow?: number;
}

export function serverConfig(s: ServerTransportSettings): Config {
  const enc = new TextEncoder();
  const config = quiche.Config.withBoringSslCtx(
    false,
    false,
    null,
    [enc.encode(s.keyPem)],
    [enc.encode(s.certPem)],
    SIGALGS,
  );
  const streamWindow = s.streamWindow ?? 1024 * 1024;
  const connectionWindow = s.connectionWindow ?? 10 * 1024 * 1024;
  config.setApplicationProtos([s.alpn]);
  config.setMaxIdleTimeout(s.idleTimeoutMs);
  config.setMaxRecvUdpPayloadSize(quiche.MAX_DATAGRAM_SIZE);
  config.setMaxSendUdpPayloadSize(quiche.MAX_DATAGRAM_SIZE);
  config.setInitialMaxData(connectionWindow);
  config.setInitialMaxStreamDataBidiLocal(streamWindow);
  config.setInitialMaxStreamDataBidiRemote(streamWindow);
  config.setInitialMaxStreamDataUni(streamWindow);
  config.setInitialMaxStreamsBidi(s.maxStreamsBidi);
  // Clients open no uni-streams in this protocol; a few are allowed so a stray one is refused
  // per stream rather than as a connection error.
  config.setInitialMaxStreamsUni(8);
  config.setMaxStreamWindow(quiche.MAX_STREAM_WINDOW);
  config.setMaxConnectionWindow(quiche.MAX_CONNECTION_WINDOW);
  config.setDisableActiveMigration(true);
  config.grease(true);
  return config;
}
