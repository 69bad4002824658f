// TLS material for the QUIC listener: configured files, or in development a certificate
// authority and a server (leaf) certificate it signs for localhost/127.0.0.1/::1, generated once
// and kept in the data directory. Clients pin the CA, never the leaf: rustls/webpki refuses a CA
// certificate used as the end-entity certificate (CaUsedAsEndEntity), and a leaf signed by a
// pinned CA can be re-issued without clients noticing.
import "reflect-metadata"; // required by @peculiar/x509 (tsyringe)
import { webcrypto, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

export interface TlsMaterial {
  /** The server's certificate (the leaf in development). */
  certPem: string;
  keyPem: string;
  /** What clients pin: the development CA, or the configured certificate itself. */
  caPem: string;
  /** True when generated here: production mode refuses it. */
  selfSigned: boolean;
}

/** Files of the development TLS material in the data directory. */
export const DEV_TLS_FILES = {
  /** The development CA certificate: the file clients pin (`qpq --ca`, QPQ_CA). */
  ca: "dev-ca.pem",
  caKey: "dev-ca-key.pem",
  /** The server's leaf certificate and key. */
  cert: "dev-server.pem",
  key: "dev-server-key.pem",
} as const;

/** The single self-signed CA:TRUE certificate of earlier versions, replaced on start. */
const OLD_DEV_FILES = ["dev-cert.pem", "dev-key.pem"] as const;

/** Leaves are re-issued this long before they expire. */
const LEAF_RENEW_MS = 30 * 24 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

const toPem = (der: ArrayBuffer, label: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(der)
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n")}\n-----END ${label}-----\n`;

const fromPem = (pem: string) =>
  Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");

const serial = () =>
  Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");

function useWebCrypto(): void {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey("pkcs8", fromPem(pem), ALG, true, ["sign"]);
}

export interface DevCa {
  caPem: string;
  caKeyPem: string;
}

/** A development CA: CA:TRUE, path length 0, keyCertSign, valid ten years. */
export async function generateDevCa(): Promise<DevCa> {
  useWebCrypto();
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=qpq-edge development CA",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3650 * DAY_MS),
    keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams["keys"],
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as x509.PublicKeyType),
    ],
  });
  return { caPem: cert.toString("pem") + "\n", caKeyPem: await exportKey(keys.privateKey) };
}

/**
 * A server certificate signed by `ca`: CA:FALSE, digitalSignature, serverAuth, SANs localhost,
 * 127.0.0.1 and ::1, valid 825 days (the longest clients accept for a leaf).
 */
export async function issueDevLeaf(ca: DevCa): Promise<{ certPem: string; keyPem: string }> {
  useWebCrypto();
  const caCert = new x509.X509Certificate(ca.caPem);
  const caKey = await importKey(ca.caKeyPem);
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: "CN=localhost",
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(now + 825 * DAY_MS, caCert.notAfter.getTime())),
    publicKey: keys.publicKey as unknown as x509.PublicKeyType,
    signingKey: caKey as unknown as x509.X509CertificateCreateWithKeyParams["signingKey"],
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
        { type: "ip", value: "::1" },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as x509.PublicKeyType),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await exportKey(keys.privateKey) };
}

/** A fresh CA and a leaf it signs, in memory (tests and the bench's echo server). */
export async function generateDevCertificate(): Promise<DevCa & { certPem: string; keyPem: string }> {
  const ca = await generateDevCa();
  return { ...ca, ...(await issueDevLeaf(ca)) };
}

/** True when `certPem` was signed by `caPem` and is valid for at least `marginMs` more. */
function leafUsable(certPem: string, caPem: string, marginMs: number): boolean {
  try {
    const leaf = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return leaf.verify(ca.publicKey) && Date.parse(leaf.validTo) - Date.now() > marginMs;
  } catch {
    return false;
  }
}

export interface LoadedTls extends TlsMaterial {
  /** What start-up did to the development material, for the log; undefined when nothing. */
  note?: string;
}

/**
 * Loads QPQ_TLS_CERT/QPQ_TLS_KEY when given; otherwise the development CA and leaf in `dataDir`,
 * creating what is missing: the CA is kept (clients pin it across restarts), a leaf missing,
 * not signed by it, or close to expiry is re-issued, and the single self-signed certificate of
 * earlier versions (dev-cert.pem, dev-key.pem) is replaced by a CA and a leaf.
 */
export async function loadTls(opts: { certFile?: string; keyFile?: string; dataDir: string }): Promise<LoadedTls> {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error("QPQ_TLS_CERT and QPQ_TLS_KEY must be set together");
    const certPem = readFileSync(opts.certFile, "utf8");
    return { certPem, keyPem: readFileSync(opts.keyFile, "utf8"), caPem: certPem, selfSigned: false };
  }
  const path = (name: string) => join(opts.dataDir, name);
  mkdirSync(opts.dataDir, { recursive: true });
  const notes: string[] = [];
  if (OLD_DEV_FILES.some((f) => existsSync(path(f)))) {
    for (const f of OLD_DEV_FILES) rmSync(path(f), { force: true });
    notes.push(`replaced the self-signed ${OLD_DEV_FILES[0]} by a development CA (${DEV_TLS_FILES.ca}) and a leaf`);
  }
  let ca: DevCa;
  if (existsSync(path(DEV_TLS_FILES.ca)) && existsSync(path(DEV_TLS_FILES.caKey))) {
    ca = {
      caPem: readFileSync(path(DEV_TLS_FILES.ca), "utf8"),
      caKeyPem: readFileSync(path(DEV_TLS_FILES.caKey), "utf8"),
    };
  } else {
    ca = await generateDevCa();
    writeFileSync(path(DEV_TLS_FILES.caKey), ca.caKeyPem, { mode: 0o600 });
    writeFileSync(path(DEV_TLS_FILES.ca), ca.caPem);
    rmSync(path(DEV_TLS_FILES.cert), { force: true });
    if (notes.length === 0) notes.push(`created a development CA (${DEV_TLS_FILES.ca})`);
  }
  let certPem = existsSync(path(DEV_TLS_FILES.cert)) ? readFileSync(path(DEV_TLS_FILES.cert), "utf8") : undefined;
  let keyPem = existsSync(path(DEV_TLS_FILES.key)) ? readFileSync(path(DEV_TLS_FILES.key), "utf8") : undefined;
  if (!certPem || !keyPem || !leafUsable(certPem, ca.caPem, LEAF_RENEW_MS)) {
    ({ certPem, keyPem } = await issueDevLeaf(ca));
    writeFileSync(path(DEV_TLS_FILES.key), keyPem, { mode: 0o600 });
    writeFileSync(path(DEV_TLS_FILES.cert), certPem);
    if (notes.length === 0) notes.push(`issued a new development server certificate (${DEV_TLS_FILES.cert})`);
  }
  return {
    certPem,
    keyPem,
    caPem: ca.caPem,
    selfSigned: true,
    ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
  };
}
