// TLS material for the QUIC listener: configured files, or in development a self-signed
// certificate for localhost/127.0.0.1/::1 generated once and kept in the data directory.
import "reflect-metadata"; // required by @peculiar/x509 (tsyringe)
import { webcrypto } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

export interface TlsMaterial {
  certPem: string;
  keyPem: string;
  /** True when generated here: production mode refuses it. */
  selfSigned: boolean;
}

const toPem = (der: ArrayBuffer, label: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n")}\n-----END ${label}-----\n`;

export async function generateDevCertificate(): Promise<{ certPem: string; keyPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
      .toString("hex")
      .replace(/^[89a-f]/, "1"),
    name: "CN=qpq-edge development",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 825 * 24 * 3600 * 1000),
    keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams["keys"],
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
        { type: "ip", value: "::1" },
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { certPem: cert.toString("pem") + "\n", keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

/**
 * Loads QPQ_TLS_CERT/QPQ_TLS_KEY when given; otherwise reuses or creates the development
 * certificate in `dataDir` (so clients can pin it across restarts).
 */
export async function loadTls(opts: { certFile?: string; keyFile?: string; dataDir: string }): Promise<TlsMaterial> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error("QPQ_TLS_CERT and QPQ_TLS_KEY must be set together");
    return {
      certPem: readFileSync(opts.certFile, "utf8"),
      keyPem: readFileSync(opts.keyFile, "utf8"),
      selfSigned: false,
    };
  }
  const certFile = join(opts.dataDir, "dev-cert.pem");
  const keyFile = join(opts.dataDir, "dev-key.pem");
  if (existsSync(certFile) && existsSync(keyFile)) {
    return { certPem: readFileSync(certFile, "utf8"), keyPem: readFileSync(keyFile, "utf8"), selfSigned: true };
  }
  const { certPem, keyPem } = await generateDevCertificate();
  mkdirSync(opts.dataDir, { recursive: true });
  writeFileSync(certFile, certPem);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  return { certPem, keyPem, selfSigned: true };
}
