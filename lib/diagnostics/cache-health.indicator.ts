import { Inject, Injectable, Optional } from '@nestjs/common';
import { CACHE_NAMED_STACKS } from '../config/cache.constants';
import type { NamedStacks } from '../core/named-stacks';
import { CacheStack } from '../core/cache-stack';
import type { CacheHealth } from '../interfaces/cache-stats.interface';
import { CacheArgumentError } from '../utils/cache.errors';
import { describeError, describeValue } from '../utils/describe-value';
import { redact } from '../utils/redact';

/** The status of a cache as `@nestjs/terminus` reads it. */
export type CacheHealthStatus = 'up' | 'degraded' | 'down';

/**
 * What {@link CacheHealthIndicator.isHealthy} reports under its key: terminus's
 * `{ status, ...details }` object. Fields that do not apply to the cache are absent (no `l2`
 * for an in-process cache, no `circuit` without failover, no `bus` with one tier).
 */
export interface CacheHealthDetails<S extends CacheHealthStatus = CacheHealthStatus> extends Omit<
  CacheHealth,
  'status'
> {
  /**
   * `up` or `down`; a degraded cache is `up` with `degraded: true`, or `degraded` when asked
   * for (`{ degraded: 'degraded' }`, Terminus 12 and later).
   */
  readonly status: S;
  /** `true` while the cache serves with reduced guarantees (see `reason`). */
  readonly degraded?: true;
  /**
   * With named caches (`caches`), checked without `{ cache }`: each named cache's own details,
   * by name; the top-level fields are the module's own cache, and `status` the worst of all.
   */
  readonly caches?: Readonly<Record<string, CacheHealthDetails<S>>>;
}

/**
 * The result of {@link CacheHealthIndicator.isHealthy}: terminus's `HealthIndicatorResult`
 * shape, `{ [key]: { status, ...details } }`.
 */
export type CacheHealthIndicatorResult<
  K extends string = string,
  S extends CacheHealthStatus = CacheHealthStatus,
> = Record<K, CacheHealthDetails<S>>;

/** Options of {@link CacheHealthIndicator.isHealthy}. */
export interface CacheHealthCheckOptions {
  /**
   * Milliseconds the `PING` of the shared store may take before the cache counts as
   * unreachable. A positive finite number.
   * @default 1000
   */
  readonly timeout?: number;
  /**
   * How a degraded cache is reported: `'up'` with `degraded: true` (the default: HTTP 200 on
   * every Terminus, and typed `'up' | 'down'` as Terminus 11's `HealthIndicatorFunction`
   * wants), or `'degraded'`, Terminus 12's own status (HTTP 200, overall status `degraded`;
   * Terminus 11 drops an indicator with a status it does not know, so use it on 12 only).
   * @default 'up'
   */
  readonly degraded?: 'up' | 'degraded';
  /**
   * Check this named cache only (a key of the module's `caches`; `'default'`: the module's own
   * cache only). Without it, every cache is checked.
   * @default every cache
   */
  readonly cache?: string;
}

/** The default `timeout` of {@link CacheHealthIndicator.isHealthy}, in milliseconds. */
const DEFAULT_TIMEOUT_MS = 1000;
/** The longest delay a Node timer accepts. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A `@nestjs/terminus` health indicator for the cache: the shared store's `PING` (with its
 * latency), the circuit breaker with failover, the bus with two tiers, the L1's size, and
 * which tier serves reads.
 *
 * - `up`: everything the cache is configured with answers.
 * - degraded but up (HTTP 200): the cache serves, with reduced guarantees — failover answers
 *   from its in-process fallback while Redis is unreachable or the circuit is not closed, or
 *   the bus of two tiers is deaf (the L1 is bypassed). Reported as `status: 'up'` with
 *   `degraded: true` and a `reason`; with `{ degraded: 'degraded' }`, as Terminus 12's own
 *   `status: 'degraded'` (see {@link CacheHealthCheckOptions.degraded}).
 * - `down` (HTTP 503): the shared store is unreachable and nothing stands in for it.
 *
 * `@nestjs/terminus` is an optional peer: this class does not import it, and
 * `CacheModule` provides the indicator whether it is installed or not.
 *
 * @example
 * ```ts
 * @Controller('health')
 * export class HealthController {
 *   constructor(
 *     private readonly health: HealthCheckService,
 *     private readonly cache: CacheHealthIndicator,
 *   ) {}
 *
 *   @Get()
 *   @HealthCheck()
 *   check() {
 *     return this.health.check([() => this.cache.isHealthy('cache', { timeout: 500 })]);
 *   }
 * }
 * // GET /health, Redis down with failover: 200
 * // { "status": "ok", "info": { "cache": { "status": "up", "degraded": true,
 * //   "reason": "...", "l2": { "status": "down", "error": "..." }, "circuit": "open",
 * //   "l1": { "entries": 12, "bytes": 3400 }, "serving": "l1" } }, ... }
 * ```
 */
@Injectable()
export class CacheHealthIndicator {
  /** @internal Nest builds the indicator over the application's cache stacks. */
  constructor(
    private readonly stack: CacheStack,
    @Optional() @Inject(CACHE_NAMED_STACKS) private readonly named?: NamedStacks,
  ) {}

  /**
   * Checks the cache now and answers terminus's `{ [key]: { status, ...details } }`. Never
   * rejects for a cache failure: a cache that is down is reported `down` (terminus then
   * answers 503). Rejects with {@link CacheArgumentError} for an empty `key`, a `timeout` that
   * is not a positive finite number, or an unknown `degraded`.
   *
   * The status is typed `'up' | 'down'`, which the `HealthIndicatorFunction` of every
   * Terminus accepts; with `{ degraded: 'degraded' }` (Terminus 12 and later) it may be
   * `'degraded'` too.
   *
   * @param key - The key of the result in terminus's response (default `'cache'`).
   * @param options - The ping's timeout and the shape of a degraded cache.
   */
  isHealthy<const K extends string = 'cache'>(
    key: K | undefined,
    options: CacheHealthCheckOptions & { readonly degraded: 'degraded' },
  ): Promise<CacheHealthIndicatorResult<K>>;
  /** {@inheritDoc CacheHealthIndicator.(isHealthy:1)} */
  isHealthy<const K extends string = 'cache'>(
    key?: K,
    options?: CacheHealthCheckOptions & { readonly degraded?: 'up' },
  ): Promise<CacheHealthIndicatorResult<K, 'up' | 'down'>>;
  async isHealthy(
    key: string = 'cache',
    options: CacheHealthCheckOptions = {},
  ): Promise<CacheHealthIndicatorResult> {
    if (typeof key !== 'string' || key.length === 0) {
      throw new CacheArgumentError(
        `CacheHealthIndicator.isHealthy: key must be a non-empty string, got ${describeValue(key)}.`,
      );
    }
    const { timeout = DEFAULT_TIMEOUT_MS, degraded } = options ?? {};
    if (
      typeof timeout !== 'number' ||
      !Number.isFinite(timeout) ||
      timeout <= 0 ||
      timeout > MAX_TIMEOUT_MS
    ) {
      throw new CacheArgumentError(
        `CacheHealthIndicator.isHealthy: timeout must be a positive number of milliseconds ` +
          `(at most ${MAX_TIMEOUT_MS}), got ${describeValue(timeout)}.`,
      );
    }
    if (degraded !== undefined && degraded !== 'up' && degraded !== 'degraded') {
      throw new CacheArgumentError(
        `CacheHealthIndicator.isHealthy: degraded must be 'up' or 'degraded', got ${describeValue(degraded)}.`,
      );
    }
    const asDegraded = degraded === 'degraded';
    const only = options?.cache;
    if (only !== undefined) {
      const stack = only === 'default' ? this.stack : this.named?.get(only)?.stack;
      if (!stack) {
        const known = ['default', ...(this.named?.names() ?? [])];
        throw new CacheArgumentError(
          `CacheHealthIndicator.isHealthy: unknown cache ${describeValue(only)}; configured ` +
            `caches: ${known.join(', ')}.`,
        );
      }
      return { [key]: toDetails(await this.check(stack, timeout), asDegraded) };
    }
    const named = this.named?.all() ?? [];
    const [own, ...others] = await Promise.all([
      this.check(this.stack, timeout),
      ...named.map((cache) => this.check(cache.stack, timeout)),
    ]);
    const details = toDetails(own, asDegraded);
    if (named.length === 0) return { [key]: details };
    const caches: Record<string, CacheHealthDetails> = {};
    named.forEach((cache, i) => (caches[cache.name] = toDetails(others[i], asDegraded)));
    const worst = [details, ...Object.values(caches)].reduce((a, b) =>
      SEVERITY[b.status] > SEVERITY[a.status] ||
      (SEVERITY[b.status] === SEVERITY[a.status] && b.degraded && !a.degraded)
        ? b
        : a,
    );
    return {
      [key]: {
        ...details,
        status: worst.status,
        ...(worst.degraded && { degraded: true }),
        ...(worst !== details &&
          worst.reason !== undefined && {
            reason: `cache ${Object.keys(caches).find((name) => caches[name] === worst)}: ${worst.reason}`,
          }),
        caches,
      },
    };
  }

  private async check(stack: CacheStack, timeout: number): Promise<CacheHealth> {
    try {
      return await stack.health(timeout);
    } catch (error) {
      // The stack's health() never rejects; should it ever, the cache is reported down.
      return { status: 'down', reason: describeError(error), serving: 'l2' };
    }
  }
}

const SEVERITY: Readonly<Record<CacheHealthStatus, number>> = { up: 0, degraded: 1, down: 2 };

function toDetails(health: CacheHealth, asDegraded: boolean): CacheHealthDetails {
  const { status, reason, l2, circuit, bus, l1, serving } = health;
  // Built field by field (not spread from `health`): only what is documented leaves the process.
  return {
    status: status === 'degraded' && !asDegraded ? 'up' : status,
    ...(status === 'degraded' && { degraded: true }),
    ...(status !== 'up' && reason !== undefined && { reason: redact(reason) }),
    ...(l2 !== undefined && {
      l2: {
        status: l2.status,
        ...(l2.latencyMs !== undefined && { latencyMs: l2.latencyMs }),
        ...(l2.error !== undefined && { error: redact(l2.error) }),
      },
    }),
    ...(circuit !== undefined && { circuit }),
    ...(bus !== undefined && { bus }),
    ...(l1 !== undefined && { l1: { entries: l1.entries, bytes: l1.bytes } }),
    serving,
  };
}
