import { randomUUID } from 'node:crypto';
import type { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { Cluster, RedisOptions } from 'ioredis';
import { describeError } from '../utils/describe-value';
import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';
import { redactUrl } from '../utils/redact';
import { withTimeout } from '../utils/timeout';
import type { BusListener, BusMessage, BusState, CacheBus } from './cache-bus';

/** Tuning of a {@link RedisBus}, in milliseconds. @internal */
export interface RedisBusSettings {
  /**
   * The namespace whose changes the bus carries: its channel is `cachekit:bus:<namespace>`, or
   * `cachekit:bus:<scope>:<namespace>` with a {@link scope}.
   */
  readonly namespace: string;
  /**
   * What else tells apart keys of one namespace (pub/sub ignores the database number):
   * `db3`, say; empty for database 0 with no key prefix.
   */
  readonly scope?: string;
  /** Between two PINGs on the subscriber connection; one unanswered this long is a stall. `0`: off. */
  readonly heartbeatMs: number;
  /** Messages kept for retry while publishing fails; beyond it they become one "clear all". */
  readonly maxBuffered: number;
  /** Bound of one PUBLISH (the cache's per-call timeout). */
  readonly timeoutMs: number;
}

/** Keys or prefixes per published message: a huge invalidation is sent in parts. */
const MAX_ITEMS_PER_MESSAGE = 1000;
/** Between two attempts to send the messages buffered while publishing failed. */
const RETRY_MS = 250;
/**
 * Longest wait of `start` for the first subscription (startup never fails for the bus, and an
 * unreachable Redis ends the wait at once).
 */
const START_WAIT_MS = 2000;

/** The wire form of a {@link BusMessage}, with its sender. */
interface WireMessage {
  /** Origin: the sending bus's id (an instance ignores its own messages). */
  o: string;
  k?: string[];
  p?: string[];
  c?: 1;
  /** Tags invalidated, with their times. */
  t?: Array<[string, number]>;
}

/** What one tick's changes add up to, before they are sent. */
interface Pending {
  keys: Set<string>;
  prefixes: Set<string>;
  tags: Map<string, number>;
  clear: boolean;
}

/**
 * The bus over Redis pub/sub: one channel per namespace, published on the cache's own Redis
 * client, heard on a subscriber connection of its own (a duplicate of the client; on a cluster,
 * a connection to one master, moved to another when that one goes: a cluster broadcasts every
 * PUBLISH to all its nodes). It follows Sentinel failovers through the duplicated client.
 *
 * Changes published in one tick go out as one message. A message that cannot be published
 * (Redis down or slow) is kept in a bounded buffer and re-sent; when the buffer is full its
 * content is replaced by one "clear all", so other instances drop too much rather than too
 * little. The bus is `deaf` whenever its subscription is not established or a heartbeat PING
 * goes unanswered (a stall); its listener is told, and told again when it is `live`.
 *
 * @internal
 */
export class RedisBus implements CacheBus {
  /** This bus's id: messages carrying it are its own. */
  readonly origin = randomUUID();
  private readonly channel: string;
  private readonly logger: Logger = new CacheLogger();
  private readonly log = new RateLimitedLogger(this.logger);
  private listener: BusListener | undefined;
  private subscriber: Redis | undefined;
  private subscribed = false;
  /** Was live once: the next subscription ends a gap. */
  private wasLive = false;
  private stopped = true;
  /** Stopped for good: nothing more is published (before `start`, publishing already works). */
  private closed = false;
  private pending: Pending | undefined;
  /** Payloads whose PUBLISH failed, oldest first. */
  private buffered: string[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private pinging = false;
  private readonly sending = new Set<Promise<void>>();
  private readonly waiters = new Set<() => void>();

  constructor(
    /** The cache's client: PUBLISH goes through it. */
    private readonly publisher: Redis | Cluster,
    private readonly settings: RedisBusSettings,
    /** Opens a new subscriber connection (lazy); the default duplicates `publisher`. */
    private readonly openSubscriber: () => Redis = subscriberSource(publisher),
  ) {
    this.channel = `cachekit:bus:${settings.scope ? `${settings.scope}:` : ''}${settings.namespace}`;
  }

  get state(): BusState {
    return this.subscribed ? 'live' : 'deaf';
  }

  /**
   * One connection carries the cache's writes and the PUBLISH after them, in order; not on a
   * cluster, where a PUBLISH may reach a node before the write reaches the key's node.
   */
  get ordered(): boolean {
    return !this.publisher.isCluster;
  }

  /** Payloads waiting to be re-sent. */
  get bufferedMessages(): number {
    return this.buffered.length;
  }

  listen(listener: BusListener): void {
    this.listener = listener;
  }

  publish(message: BusMessage): void {
    if (this.closed) return;
    if (!this.pending) {
      this.pending = { keys: new Set(), prefixes: new Set(), tags: new Map(), clear: false };
      process.nextTick(() => this.flush());
    }
    const pending = this.pending;
    if (message.clear) pending.clear = true;
    if (pending.clear) return;
    message.keys?.forEach((key) => pending.keys.add(key));
    message.prefixes?.forEach((prefix) => pending.prefixes.add(prefix));
    message.tags?.forEach(([tag, at]) => {
      if (!(at <= (pending.tags.get(tag) ?? -Infinity))) pending.tags.set(tag, at);
    });
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.closed = false;
    this.connect();
    if (this.settings.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.settings.heartbeatMs);
      this.heartbeatTimer.unref();
    }
    await this.whenLive(START_WAIT_MS);
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.flush();
    // What is being sent gets a bounded chance to land; what is buffered is given up.
    await withTimeout(Promise.all([...this.sending]), this.settings.timeoutMs).catch(() => {});
    this.stopped = true;
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.retryTimer);
    this.heartbeatTimer = this.retryTimer = undefined;
    if (this.buffered.length > 0) {
      this.log.warn(
        'bus:dropped',
        `Cache bus: ${this.buffered.length} invalidation message(s) could not be published ` +
          `before shutdown; other instances drop those entries when their L1 TTL ends`,
      );
      this.buffered = [];
    }
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.subscribed = false;
    subscriber?.disconnect();
    this.waiters.forEach((wake) => wake());
  }

  /** Resolves when the bus is live, or after `ms`. */
  whenLive(ms: number): Promise<void> {
    if (this.subscribed || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.waiters.add(wake);
    });
  }

  private connect(): void {
    const subscriber = this.openSubscriber();
    this.subscriber = subscriber;
    subscriber.on('ready', () => this.subscribe(subscriber));
    subscriber.on('close', () => {
      this.lost(subscriber, 'connection closed');
      // A start waits for the first subscription only while a connection is being tried.
      this.waiters.forEach((wake) => wake());
    });
    subscriber.on('end', () => this.ended(subscriber));
    subscriber.on('message', (channel: string, payload: string) => {
      if (channel === this.channel && subscriber === this.subscriber) this.received(payload);
    });
    subscriber.on('error', (error: Error) =>
      this.log.warn('bus:connection', `Cache bus connection error: ${redactUrl(error.message)}`),
    );
    subscriber.connect().catch(() => {
      // Reported through 'error'; ioredis reconnects by its retry strategy.
    });
  }

  private subscribe(subscriber: Redis): void {
    withTimeout(subscriber.subscribe(this.channel), this.settings.timeoutMs).then(
      () => {
        if (subscriber !== this.subscriber || this.subscribed) return;
        this.subscribed = true;
        const afterGap = this.wasLive;
        this.wasLive = true;
        if (afterGap) {
          this.logger.log('Cache bus subscribed again; the L1 entries cached before are dropped');
        }
        this.listener?.live(afterGap);
        this.waiters.forEach((wake) => wake());
      },
      (error: unknown) => {
        if (subscriber !== this.subscriber) return;
        this.log.warn('bus:subscribe', `Cache bus could not subscribe: ${describeError(error)}`);
        subscriber.disconnect(true);
      },
    );
  }

  /** The subscription is gone (or cannot be trusted): deaf until subscribed again. */
  private lost(subscriber: Redis, reason: string): void {
    if (subscriber !== this.subscriber || !this.subscribed) return;
    this.subscribed = false;
    this.log.warn(
      'bus:deaf',
      `Cache bus lost its subscription (${reason}); the L1 is bypassed until it is back`,
    );
    this.listener?.deaf(reason);
  }

  /** ioredis gave up reconnecting: open a new connection (on a cluster, maybe to another node). */
  private ended(subscriber: Redis): void {
    this.lost(subscriber, 'connection ended');
    if (subscriber !== this.subscriber || this.stopped) return;
    const timer = setTimeout(() => {
      if (!this.stopped && subscriber === this.subscriber) this.connect();
    }, RETRY_MS);
    timer.unref();
  }

  private heartbeat(): void {
    const subscriber = this.subscriber;
    if (!subscriber || !this.subscribed || this.pinging) return;
    this.pinging = true;
    let answered = false;
    const ping = subscriber.ping().then(() => (answered = true));
    void withTimeout(ping, this.settings.heartbeatMs)
      .then(
        () => undefined,
        // A busy event loop (a long GC, a big JSON.parse) may run the timer before the reply
        // that is already in the socket: let pending I/O run once before calling it a stall.
        (error: unknown) => afterPendingIo().then(() => (answered ? undefined : error)),
      )
      .then((error: unknown) => {
        if (error === undefined || subscriber !== this.subscriber || this.stopped) return;
        this.lost(subscriber, `no answer to a heartbeat PING: ${describeError(error)}`);
        // A new connection: messages held by the stalled one are lost, which the gap covers.
        subscriber.disconnect(true);
      })
      .finally(() => (this.pinging = false));
  }

  private received(payload: string): void {
    const message = decode(payload);
    if (message === undefined) {
      this.log.warn(
        'bus:malformed',
        `Cache bus received a message it cannot read on ${this.channel}; dropping the whole L1`,
      );
      this.listener?.message({ clear: true });
      return;
    }
    if (message.o === this.origin) return;
    this.listener?.message(busMessageOf(message));
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = undefined;
    if (!pending || this.closed) return;
    for (const payload of encode(this.origin, pending)) this.send(payload);
  }

  private send(payload: string): void {
    const sent = withTimeout(
      () => this.publisher.publish(this.channel, payload),
      this.settings.timeoutMs,
    ).then(
      () => this.listener?.sent?.(() => busMessageOf(decode(payload) ?? { o: '', c: 1 })),
      (error: unknown) => this.keep(payload, error),
    );
    this.sending.add(sent);
    void sent.then(() => this.sending.delete(sent));
  }

  private keep(payload: string, error: unknown): void {
    if (this.closed) return;
    this.log.warn(
      'bus:publish',
      `Cache bus could not publish an invalidation (${describeError(error)}); retrying`,
    );
    if (this.buffered.length >= this.settings.maxBuffered) {
      this.log.warn(
        'bus:overflow',
        `Cache bus retry buffer is full (${this.settings.maxBuffered}); other instances will be ` +
          `told to drop their whole L1 instead`,
      );
      this.buffered = [JSON.stringify({ o: this.origin, c: 1 } satisfies WireMessage)];
    } else {
      this.buffered.push(payload);
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const payloads = this.buffered;
      this.buffered = [];
      payloads.forEach((payload) => this.send(payload));
    }, RETRY_MS);
    this.retryTimer.unref();
  }
}

/** Resolves after the event loop has polled for I/O once (what is readable has been read). */
function afterPendingIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

function encode(origin: string, pending: Pending): string[] {
  if (pending.clear) return [JSON.stringify({ o: origin, c: 1 } satisfies WireMessage)];
  const payloads: string[] = [];
  const keys = [...pending.keys];
  const prefixes = [...pending.prefixes];
  for (let i = 0; i < keys.length; i += MAX_ITEMS_PER_MESSAGE) {
    payloads.push(JSON.stringify({ o: origin, k: keys.slice(i, i + MAX_ITEMS_PER_MESSAGE) }));
  }
  const tags = [...pending.tags];
  for (let i = 0; i < tags.length; i += MAX_ITEMS_PER_MESSAGE) {
    payloads.push(JSON.stringify({ o: origin, t: tags.slice(i, i + MAX_ITEMS_PER_MESSAGE) }));
  }
  for (let i = 0; i < prefixes.length; i += MAX_ITEMS_PER_MESSAGE) {
    payloads.push(
      JSON.stringify({
        o: origin,
        p: prefixes.slice(i, i + MAX_ITEMS_PER_MESSAGE),
      }),
    );
  }
  return payloads;
}

/** What a wire message tells the cache. */
function busMessageOf(message: WireMessage): BusMessage {
  return { keys: message.k, prefixes: message.p, clear: message.c === 1, tags: message.t };
}

/** The message in `payload`, or `undefined` when it is not one of ours. */
function decode(payload: string): WireMessage | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const { o, k, p, c, t } = parsed as Record<string, unknown>;
  if (typeof o !== 'string') return undefined;
  if (k !== undefined && !isStringArray(k)) return undefined;
  if (p !== undefined && !isStringArray(p)) return undefined;
  if (c !== undefined && c !== 1) return undefined;
  if (t !== undefined && !isTagTimes(t)) return undefined;
  if (k === undefined && p === undefined && c === undefined && t === undefined) return undefined;
  return parsed as WireMessage;
}

function isTagTimes(value: unknown): value is Array<[string, number]> {
  return (
    Array.isArray(value) &&
    value.every(
      (pair) =>
        Array.isArray(pair) &&
        pair.length === 2 &&
        typeof pair[0] === 'string' &&
        typeof pair[1] === 'number' &&
        Number.isFinite(pair[1]),
    )
  );
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Subscriber connections need a queue for SUBSCRIBE and never resubscribe on their own. */
const SUBSCRIBER_OPTIONS: RedisOptions = {
  lazyConnect: true,
  autoResubscribe: false,
  enableOfflineQueue: true,
  maxRetriesPerRequest: null,
};

/**
 * Where new subscriber connections come from: a duplicate of a single or Sentinel client (same
 * server, credentials and retry strategy; Sentinel finds the current master), or, for a cluster,
 * a connection to one of its masters, another one each time.
 */
function subscriberSource(client: Redis | Cluster): () => Redis {
  if (!client.isCluster) return () => (client as Redis).duplicate(SUBSCRIBER_OPTIONS);
  const cluster = client as Cluster;
  let turn = 0;
  return () => {
    const masters = cluster.nodes('master');
    const nodes =
      masters.length > 0
        ? masters.map((node) => ({ host: node.options.host, port: node.options.port }))
        : (cluster as unknown as { startupNodes: Array<{ host?: string; port?: number }> })
            .startupNodes;
    const node = nodes[turn++ % Math.max(1, nodes.length)] ?? {};
    return new Redis({
      ...cluster.options.redisOptions,
      ...SUBSCRIBER_OPTIONS,
      host: node.host,
      port: node.port,
      // A few attempts on this node, then 'end': the bus moves to another one.
      retryStrategy: (attempt: number) => (attempt > 3 ? null : attempt * 200),
    });
  };
}
