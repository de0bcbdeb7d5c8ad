/**
 * What one bus message tells the other instances: these entries changed in the shared tier, so
 * drop them from your in-process tier (L1) and discard loads in flight for them.
 *
 * @internal
 */
export interface BusMessage {
  /** Exact keys written or deleted. */
  readonly keys?: readonly string[];
  /** Prefixes deleted (`deleteByPrefix`, partition wipes, invalidation rules). */
  readonly prefixes?: readonly string[];
  /** The whole namespace was cleared. */
  readonly clear?: boolean;
  /** Tags invalidated (`deleteByTag`), each with its invalidation time (ms). */
  readonly tags?: ReadonlyArray<readonly [string, number]>;
}

/**
 * Whether the bus hears the other instances: `live` (subscribed), `deaf` (not subscribed, or
 * stalled: messages may be lost) or `off` (no bus: one instance).
 *
 * @internal
 */
export type BusState = 'live' | 'deaf' | 'off';

/** What the two-tier store is told by its bus. @internal */
export interface BusListener {
  /** Another instance changed these entries. */
  message(message: BusMessage): void;
  /** The bus stopped hearing (disconnect, stall): the L1 may miss invalidations from now on. */
  deaf(reason: string): void;
  /** The bus hears again after being deaf (or for the first time): messages may have been lost. */
  live(afterGap: boolean): void;
  /** One message reached the other instances (`message` decodes what it said). */
  sent?(message: () => BusMessage): void;
}

/**
 * The port of cross-instance invalidation: publishes this instance's changes, delivers the
 * others'. Publishing never blocks or fails the caller.
 *
 * @internal
 */
export interface CacheBus {
  /** See {@link BusState}. */
  readonly state: BusState;
  /**
   * `true` when a message published right after a write is issued reaches the other instances
   * only after the write is applied (one connection carries both, in order), so it need not
   * wait for the write's reply.
   */
  readonly ordered: boolean;
  /** Messages waiting to be sent (held while the connection is down; bounded). */
  readonly bufferedMessages: number;
  /** Sends `message` to the other instances (asynchronously; retried while it cannot be sent). */
  publish(message: BusMessage): void;
  /** Sets the one listener of incoming messages and state changes. */
  listen(listener: BusListener): void;
  /** Connects and subscribes; resolves once subscribed or after a bounded wait. */
  start(): Promise<void>;
  /** Flushes what it can within a bounded wait, unsubscribes and closes its connection. */
  stop(): Promise<void>;
}
