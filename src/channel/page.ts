/**
 * The words of a child's page (see `src/native/page.c`): memory the parent and one child share,
 * as an Int32Array, read and written with Atomics. The child writes, the parent reads, except
 * WAKE, which the parent sets and the child clears. The parent trusts none of it beyond the child
 * itself: a child that lies about its page only gets more or fewer connections of its own.
 */
export const PAGE = {
  /** Requests the child's handler runs now (slots taken, a just-accepted connection's reservation included). */
  BUSY: 0,
  /** 1: the parent waits for a free slot; the child clears it and sends FREE when one frees. */
  WAKE: 1,
} as const;
