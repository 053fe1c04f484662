/**
 * The words of a child's page (see `src/native/page.c`): memory the parent and one child share,
 * as an Int32Array, read and written with Atomics. The child writes, the parent reads, except
 * WAKE and ORDERS, which the parent sets and the child clears. The parent trusts none of it beyond the child
 * itself: a child that lies about its page only gets more or fewer connections of its own.
 */
export const PAGE = {
  /** Requests the child's handler runs now (slots taken, a just-accepted connection's reservation included). */
  BUSY: 0,
  /** 1: the parent waits for a free slot; the child clears it and sends FREE when one frees. */
  WAKE: 1,
  /**
   * 1: the parent sent an order a chaining child must read before its next accept of its own (an
   * END_CHAIN or a STOP); the child clears it and reads its channel. Without a page, a chaining
   * child reads its channel before each such accept, a system call that usually finds nothing.
   */
  ORDERS: 2,
} as const;
