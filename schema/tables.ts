// D1 schema (drizzle). The cold path lives here: accounts, sessions, keys, channels.
// Per-recipient message queues live in RecipientQueue Durable Objects, not in D1.
import { sqliteTable, text, integer, real, primaryKey, index, uniqueIndex, customType } from "drizzle-orm/sqlite-core";

/**
 * BLOB as Uint8Array on every runtime. drizzle's "buffer" mode needs node:buffer, and D1 hands
 * blobs back as number arrays or ArrayBuffers depending on the call.
 */
const bytes = customType<{ data: Uint8Array; driverData: ArrayBuffer | ArrayBufferView | number[] }>({
  dataType: () => "blob",
  toDriver: (value) => value,
  fromDriver: (value) => {
    if (value instanceof Uint8Array) return value;
    if (Array.isArray(value)) return Uint8Array.from(value);
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return new Uint8Array(value);
  },
});

export const users = sqliteTable(
  "users",
  {
    username: text("username").primaryKey(),
    identityKey: bytes("identity_key").notNull(),
    opaqueRecord: bytes("opaque_record").notNull(),
    createdAt: integer("created_at").notNull(),
    /**
     * Set by DeleteAccount before it purges anything: the account can no longer log in, its name
     * stays taken, and a repeated DeleteAccount (same session) finishes the purge. The row goes last.
     */
    deletingAt: integer("deleting_at"),
  },
  (t) => [uniqueIndex("users_identity_key").on(t.identityKey)],
);

/**
 * Devices of an account (at most LIMITS.devicesPerAccount, the default included). The default
 * device has the empty id and exists from registration on; others are added by RegisterDevice.
 * Every session names one of these rows; RevokeDevice deletes the row with its sessions.
 */
export const devices = sqliteTable(
  "devices",
  {
    identityKey: bytes("identity_key").notNull(),
    deviceId: bytes("device_id").notNull(),
    name: text("name").notNull().default(""),
    createdAt: integer("created_at").notNull(),
    lastSeenAt: integer("last_seen_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.identityKey, t.deviceId] })],
);

/** One APNs/FCM token per device, stored only (the server sends no pushes through them). */
export const pushTokens = sqliteTable(
  "push_tokens",
  {
    identityKey: bytes("identity_key").notNull(),
    deviceId: bytes("device_id").notNull(),
    platform: text("platform", { enum: ["apns", "fcm"] }).notNull(),
    token: bytes("token").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.identityKey, t.deviceId] })],
);

/** Sessions are stored by SHA-256 of the token: a leaked table grants nothing. */
export const sessions = sqliteTable(
  "sessions",
  {
    tokenHash: bytes("token_hash").primaryKey(),
    identityKey: bytes("identity_key").notNull(),
    deviceId: bytes("device_id").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("sessions_identity").on(t.identityKey)],
);

/** OPAQUE server login state between LoginStart and LoginFinish (<= 60 s, consumed once). */
export const pendingLogins = sqliteTable(
  "pending_logins",
  {
    id: bytes("id").primaryKey(),
    username: text("username").notNull(),
    serverState: bytes("server_state").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("pending_logins_expiry").on(t.expiresAt)],
);

/**
 * Login attempts per username, across every front: a token bucket per SHA-256 of the username
 * (known or not, so the limit reveals nothing). A row whose bucket has refilled is deleted.
 */
export const loginAttempts = sqliteTable(
  "login_attempts",
  {
    usernameHash: bytes("username_hash").primaryKey(),
    tokens: real("tokens").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("login_attempts_updated").on(t.updatedAt)],
);

/**
 * A registration between RegisterStart and RegisterFinish (<= 60 s, consumed once), keyed by
 * SHA-256(connection, username) like pending logins. It reserves no username and holds nothing
 * else: RegisterFinish only needs to know that this connection started this registration.
 */
export const pendingRegistrations = sqliteTable(
  "pending_registrations",
  {
    id: bytes("id").primaryKey(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("pending_registrations_expiry").on(t.expiresAt)],
);

/** Single-use MLS KeyPackages, FIFO per identity. */
export const keyPackages = sqliteTable(
  "key_packages",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    identityKey: bytes("identity_key").notNull(),
    package: bytes("package").notNull(),
    fingerprint: bytes("fingerprint").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("key_packages_owner").on(t.identityKey, t.id)],
);

/** RFC 9750 last-resort KeyPackage: one per identity, replaced by a newer upload, never popped. */
export const lastResortKeyPackages = sqliteTable("last_resort_key_packages", {
  identityKey: bytes("identity_key").primaryKey(),
  package: bytes("package").notNull(),
  fingerprint: bytes("fingerprint").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const hybridKeys = sqliteTable("hybrid_keys", {
  identityKey: bytes("identity_key").primaryKey(),
  publicKey: bytes("public_key").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const channels = sqliteTable("channels", {
  id: bytes("id").primaryKey(),
  kind: text("kind", { enum: ["direct", "group"] }).notNull(),
  creatorKey: bytes("creator_key").notNull(),
  name: text("name").notNull().default(""),
  description: text("description").notNull().default(""),
  defaultTtlSecs: integer("default_ttl_secs").notNull().default(0),
  createdAt: integer("created_at").notNull(),
  /** RotateKeys: the last MLS epoch a member recorded, and when (0 = never). */
  keyEpoch: integer("key_epoch").notNull().default(0),
  keysRotatedAt: integer("keys_rotated_at").notNull().default(0),
});

export const channelMembers = sqliteTable(
  "channel_members",
  {
    channelId: bytes("channel_id").notNull(),
    identityKey: bytes("identity_key").notNull(),
    role: text("role", { enum: ["creator", "admin", "member"] }).notNull(),
    joinedAt: integer("joined_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.identityKey] }), index("channel_members_identity").on(t.identityKey)],
);

/**
 * Federation peers (domain, federation URL, Ed25519 public key): the deployments whose signed
 * requests this edge accepts and to which it relays. Operators change rows without a redeploy
 * (`npm run federation -- peers-sql`, README "Federation"); the local system syncs it from
 * QPQ_FEDERATION_PEERS.
 */
export const federationPeers = sqliteTable("federation_peers", {
  domain: text("domain").primaryKey(),
  url: text("url").notNull(),
  publicKey: bytes("public_key").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/**
 * Identities homed on another deployment: learned from proxied ResolveUser answers and from
 * relays received. First binding wins; an identity never moves between domains here.
 */
export const remoteIdentities = sqliteTable(
  "remote_identities",
  {
    identityKey: bytes("identity_key").primaryKey(),
    domain: text("domain").notNull(),
    learnedAt: integer("learned_at").notNull(),
  },
  (t) => [index("remote_identities_domain").on(t.domain)],
);

/** ReportMessage: evidence is a blob encrypted for the moderators, opaque to the server. */
export const reports = sqliteTable(
  "reports",
  {
    id: bytes("id").primaryKey(),
    reporterKey: bytes("reporter_key").notNull(),
    reportedKey: bytes("reported_key").notNull(),
    channelId: bytes("channel_id").notNull(),
    evidence: bytes("evidence").notNull(),
    reason: text("reason").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("reports_created").on(t.createdAt, t.id), index("reports_reporter").on(t.reporterKey)],
);

/**
 * Bans: server-wide (channel_id empty) or per channel. expires_at 0 = permanent. Checked at login
 * and resume (server-wide) and when members are added; enforced on Enqueue by the recipients'
 * queues (per channel) and by ending the banned identity's sessions (server-wide).
 */
export const bans = sqliteTable(
  "bans",
  {
    identityKey: bytes("identity_key").notNull(),
    channelId: bytes("channel_id").notNull(),
    reason: text("reason").notNull(),
    bannedBy: bytes("banned_by").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.identityKey, t.channelId] }), index("bans_channel").on(t.channelId)],
);

/**
 * Blobs whose SHA-256 verified (visible to DownloadBlob). The bytes are in R2 as 1 MiB chunk
 * objects `blob/<storage_id>/<index>`; storage_id is the upload that completed first.
 */
export const blobs = sqliteTable("blobs", {
  hash: bytes("hash").primaryKey(),
  size: integer("size").notNull(),
  storageId: text("storage_id").notNull(),
  createdAt: integer("created_at").notNull(),
});

/**
 * Who may download a blob: each uploader (owner_key = identity_key) and the identities an
 * uploader shared it with (owner_key = that uploader). A row lives until its uploader's copy
 * expires; a blob no uploader holds any more is deleted with its R2 objects by the sweep.
 */
export const blobAccess = sqliteTable(
  "blob_access",
  {
    blobHash: bytes("blob_hash").notNull(),
    identityKey: bytes("identity_key").notNull(),
    ownerKey: bytes("owner_key").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.blobHash, t.identityKey, t.ownerKey] }),
    index("blob_access_owner").on(t.ownerKey),
    index("blob_access_expiry").on(t.expiresAt),
  ],
);

/**
 * Uploads in progress, one per (uploader, blob hash): chunks in R2 under `blob/<upload_id>/`.
 * An upload idle past expires_at is deleted with its chunks by the sweep.
 */
export const blobUploads = sqliteTable(
  "blob_uploads",
  {
    ownerKey: bytes("owner_key").notNull(),
    blobHash: bytes("blob_hash").notNull(),
    uploadId: text("upload_id").notNull(),
    totalSize: integer("total_size").notNull(),
    received: integer("received").notNull(),
    /** Identities to grant on completion: concatenated 32-byte keys. */
    shareWith: bytes("share_with").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.ownerKey, t.blobHash] }),
    uniqueIndex("blob_uploads_id").on(t.uploadId),
    index("blob_uploads_expiry").on(t.expiresAt),
  ],
);

/** Recovery bundles (opaque, client-encrypted), one per identity, found by SHA-256 of the recovery token. */
export const recoveryBundles = sqliteTable(
  "recovery_bundles",
  {
    tokenHash: bytes("token_hash").primaryKey(),
    identityKey: bytes("identity_key").notNull(),
    bundle: bytes("bundle").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [uniqueIndex("recovery_bundles_identity").on(t.identityKey)],
);

/**
 * Token buckets shared by every front and isolate (lib/rate-bucket.ts), keyed by a hash of
 * (purpose, subject): recovery fetches per token hash and per client address, blob upload starts
 * per identity. A row whose bucket has refilled is deleted.
 */
export const rateBuckets = sqliteTable(
  "rate_buckets",
  {
    key: bytes("key").primaryKey(),
    tokens: real("tokens").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("rate_buckets_updated").on(t.updatedAt)],
);

/** P2P endpoints (800/801): one per device, resolvable until expires_at. */
export const p2pEndpoints = sqliteTable(
  "p2p_endpoints",
  {
    identityKey: bytes("identity_key").notNull(),
    deviceId: bytes("device_id").notNull(),
    address: bytes("address").notNull(),
    publishedAt: integer("published_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.identityKey, t.deviceId] }), index("p2p_endpoints_expiry").on(t.expiresAt)],
);
