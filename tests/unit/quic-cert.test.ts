// The development TLS material: a CA clients pin and a leaf it signs that rustls/webpki accept
// as an end-entity certificate; old data directories are upgraded.
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEV_TLS_FILES, generateDevCa, issueDevLeaf, loadTls } from "../../quic-front/cert.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "qpq-cert-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("development certificate", () => {
  it("issues a CA:FALSE serverAuth leaf for localhost, 127.0.0.1 and ::1, signed by a CA:TRUE CA", async () => {
    const ca = await generateDevCa();
    const { certPem } = await issueDevLeaf(ca);
    const caCert = new X509Certificate(ca.caPem);
    const leaf = new X509Certificate(certPem);
    expect(caCert.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(leaf.publicKey)).toBe(false);
    expect(leaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // extended key usage: serverAuth only
    expect(leaf.subjectAltName?.split(", ").sort()).toEqual(
      ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"].sort(),
    );
    expect(leaf.checkHost("localhost")).toBe("localhost");
    expect(leaf.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(leaf.checkIP("::1")).toBe("::1");
    expect(Date.parse(leaf.validTo) - Date.now()).toBeGreaterThan(800 * 24 * 3600 * 1000);
  });

  it("creates the CA and leaf once and keeps them across starts", async () => {
    const dir = tempDir();
    const first = await loadTls({ dataDir: dir });
    expect(first.selfSigned).toBe(true);
    expect(first.note).toMatch(/created a development CA/);
    expect(readFileSync(join(dir, DEV_TLS_FILES.ca), "utf8")).toBe(first.caPem);
    expect(statSync(join(dir, DEV_TLS_FILES.caKey)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, DEV_TLS_FILES.key)).mode & 0o777).toBe(0o600);
    const again = await loadTls({ dataDir: dir });
    expect(again.note).toBeUndefined();
    expect(again.caPem).toBe(first.caPem);
    expect(again.certPem).toBe(first.certPem);
  });

  it("re-issues a leaf the CA did not sign, keeping the CA clients pin", async () => {
    const dir = tempDir();
    const first = await loadTls({ dataDir: dir });
    const stranger = await issueDevLeaf(await generateDevCa());
    writeFileSync(join(dir, DEV_TLS_FILES.cert), stranger.certPem);
    const again = await loadTls({ dataDir: dir });
    expect(again.caPem).toBe(first.caPem);
    expect(again.certPem).not.toBe(stranger.certPem);
    expect(new X509Certificate(again.certPem).verify(new X509Certificate(first.caPem).publicKey)).toBe(true);
    expect(again.note).toMatch(/issued a new development server certificate/);
  });

  it("upgrades a data directory holding the old self-signed CA:TRUE certificate", async () => {
    const dir = tempDir();
    const old = await generateDevCa(); // CA:TRUE and self-signed, like the old dev-cert.pem
    writeFileSync(join(dir, "dev-cert.pem"), old.caPem);
    writeFileSync(join(dir, "dev-key.pem"), old.caKeyPem);
    const tls = await loadTls({ dataDir: dir });
    expect(tls.note).toMatch(/replaced the self-signed dev-cert.pem/);
    expect(existsSync(join(dir, "dev-cert.pem"))).toBe(false);
    expect(existsSync(join(dir, "dev-key.pem"))).toBe(false);
    expect(new X509Certificate(tls.certPem).ca).toBe(false);
    expect(new X509Certificate(tls.certPem).verify(new X509Certificate(tls.caPem).publicKey)).toBe(true);
  });

  it("uses configured files as they are, and clients pin the configured certificate", async () => {
    const dir = tempDir();
    const { certPem, keyPem } = await issueDevLeaf(await generateDevCa());
    writeFileSync(join(dir, "c.pem"), certPem);
    writeFileSync(join(dir, "k.pem"), keyPem);
    const tls = await loadTls({ certFile: join(dir, "c.pem"), keyFile: join(dir, "k.pem"), dataDir: dir });
    expect(tls).toMatchObject({ certPem, keyPem, caPem: certPem, selfSigned: false });
    expect(existsSync(join(dir, DEV_TLS_FILES.ca))).toBe(false);
  });
});
