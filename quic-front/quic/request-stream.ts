// One RPC's request side on the lean driver: the frame assembled from a client bidirectional
// stream, with its reservation from the connection's byte budget and its deadlines. Reading
// stops (bytes stay in QUIC flow control) while the reservation waits for room.
import { RequestAssembler } from "../../proto/index.ts";
import type { TimerEntry } from "../../quic/timer-heap.ts";

export type RequestPhase =
  /** Reading header and payload. */
  | "reading"
  /** Header in; waiting for the connection's budget to hold the announced payload. */
  | "budget"
  /** Frame complete; waiting briefly for the FIN. */
  | "fin"
  /** Handed to the gateway; the answer is being produced or written. */
  | "served";

export class RequestStream {
  readonly id: number;
  readonly assembler = new RequestAssembler();
  readonly openedAt = performance.now();
  phase: RequestPhase = "reading";
  /** Bytes reserved from the connection's budget (released when served or dropped). */
  reserved = 0;
  /** The transfer deadline, then the FIN grace. */
  timer: TimerEntry | undefined;
  /** Aborts a reservation still waiting. */
  budgetWait: AbortController | undefined;
  /** The client's FIN was read, or the read side was shut down: nothing more will arrive. */
  readDone = false;

  constructor(id: number) {
    this.id = id;
  }
}
