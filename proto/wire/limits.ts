// Limits of the contract (methods.md): clients may rely on them, and the front and the edge
// enforce the same numbers.

/** FetchWait holds at most this long, whatever timeout_ms asks (the front waits; the edge caps too). */
export const FETCH_WAIT_MAX_MS = 60_000;
/** CreateChannel: member_keys holds at most this many keys (the front's hooks see no more). */
export const GROUP_MEMBERS_MAX = 256;
