// Limits of the contract (methods.md): clients may rely on them, and the front and the edge
// enforce the same numbers.

/** FetchWait holds at most this long, whatever timeout_ms asks (the front waits; the edge caps too). */
export const FETCH_WAIT_MAX_MS = 60_000;
/** CreateChannel: member_keys holds at most this many keys (the front's hooks see no more). */
export const GROUP_MEMBERS_MAX = 256;
/** UploadBlob: every chunk but a blob's last is exactly this long; DownloadBlob answers at most this. */
export const BLOB_CHUNK_BYTES = 1024 * 1024;
/** UploadBlob: the largest blob (total_size). */
export const BLOB_MAX_BYTES = 50 * 1024 * 1024;
