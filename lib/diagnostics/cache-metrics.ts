// OpenTelemetry metrics of one cache (`metrics: true` or `{ meterProvider }`). `@opentelemetry/api`
// is an optional peer: it is required lazily, only when no meter provider is given, and its types
// are described structurally below, so the library neither imports nor depends on it.
//
// Nothing here runs on the hit path. Counts are read from the stack's counters (plain numbers the
// hot path bumps anyway) by observable instruments when the SDK collects; the loader histogram is
// fed by the `loader.done` / `loader.error` events, which only loads emit.
import type { CacheCounters } from '../core/cache-counters';
import { REQUEST_KINDS } from '../core/cache-counters';
import type { CacheEvents } from '../core/cache-events';
import type {
  CacheMeterProvider,
  CacheMetricsOptions,
} from '../interfaces/cache-module-options.interface';
import type { CacheStats } from '../interfaces/cache-stats.interface';
import { CacheConfigError } from '../utils/cache.errors';
import { describeError } from '../utils/describe-value';

/** The instrumentation scope: the meter's name. @internal */
export const CACHE_METER_NAME = 'nestjs-cachekit';

/**
 * Bucket boundaries of `cache.loader.duration`, in seconds: those OpenTelemetry advises for
 * request durations (`http.server.request.duration`), 5 ms to 10 s. @internal
 */
export const LOADER_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** What the metrics read of a cache: the `CacheStack` satisfies it. @internal */
export interface CacheMetricsSource {
  /** `cache.name` of every data point. */
  readonly name: string;
  readonly events: Pick<CacheEvents, 'on'>;
  readonly counters: CacheCounters;
  readonly loadsInFlight: number;
  stats(): CacheStats;
}

/** The instruments of one cache, recording until `stop()` is called. @internal */
export interface CacheMetricsHandle {
  /** Stops recording: removes the collection callback and the event listeners. Idempotent. */
  stop(): void;
}

// The part of @opentelemetry/api used here, described structurally (never imported).
type Attributes = Readonly<Record<string, string | boolean>>;

interface InstrumentOptions {
  readonly description: string;
  readonly unit: string;
  readonly advice?: { readonly explicitBucketBoundaries: number[] };
}

interface OtelHistogram {
  record(value: number, attributes?: Attributes): void;
}

interface OtelObservableResult {
  observe(value: number, attributes?: Attributes): void;
}

type OtelObservableCallback = (result: OtelObservableResult) => void;

interface OtelObservable {
  addCallback(callback: OtelObservableCallback): void;
  removeCallback(callback: OtelObservableCallback): void;
}

interface OtelBatchResult {
  observe(observable: OtelObservable, value: number, attributes?: Attributes): void;
}

type OtelBatchCallback = (result: OtelBatchResult) => void;

interface OtelMeter {
  createHistogram(name: string, options?: InstrumentOptions): OtelHistogram;
  createObservableCounter(name: string, options?: InstrumentOptions): OtelObservable;
  createObservableUpDownCounter(name: string, options?: InstrumentOptions): OtelObservable;
  createObservableGauge(name: string, options?: InstrumentOptions): OtelObservable;
  /** Since @opentelemetry/api 1.3. */
  addBatchObservableCallback?(callback: OtelBatchCallback, observables: OtelObservable[]): void;
  removeBatchObservableCallback?(callback: OtelBatchCallback, observables: OtelObservable[]): void;
}

interface OtelApi {
  readonly metrics: { getMeterProvider(): CacheMeterProvider };
}

/**
 * Starts recording the OpenTelemetry instruments of `stack` (README "Metrics"):
 * `cache.requests`, `cache.errors`, `cache.loader.duration`, `cache.loader.timeouts`,
 * `cache.loader.active`, `cache.l1.entries`, `cache.l1.size`, `cache.circuit.state`,
 * `cache.bus.connected`, `cache.bus.messages`, `cache.bus.gaps` and `cache.lock.waits`, each with
 * the attribute `cache.name`.
 *
 * Without `meterProvider`, the global one of `@opentelemetry/api` is used (register the SDK's
 * before the application starts); a {@link CacheConfigError} naming the option `metrics` is thrown
 * when that optional peer cannot be loaded.
 * @internal
 */
export function startCacheMetrics(
  stack: CacheMetricsSource,
  options: Readonly<CacheMetricsOptions>,
): CacheMetricsHandle {
  const provider = options.meterProvider ?? loadOtelApi().metrics.getMeterProvider();
  const meter = provider.getMeter(CACHE_METER_NAME, packageVersion()) as OtelMeter;
  const name = stack.name;
  const base: Attributes = { 'cache.name': name };

  const requests = meter.createObservableCounter('cache.requests', {
    description:
      'Cache requests by operation and result; for a value the cache held, the tier that held it.',
    unit: '{request}',
  });
  const errors = meter.createObservableCounter('cache.errors', {
    description: 'Backend calls that failed (logged, answered as a miss or a no-op).',
    unit: '{error}',
  });
  const loaderDuration = meter.createHistogram('cache.loader.duration', {
    description: 'How long loaders ran (each runs once for all its concurrent callers).',
    unit: 's',
    advice: { explicitBucketBoundaries: [...LOADER_DURATION_BUCKETS] },
  });
  const loaderTimeouts = meter.createObservableCounter('cache.loader.timeouts', {
    description: 'Callers that stopped waiting for a loader (timeouts.soft or timeouts.hard).',
    unit: '{timeout}',
  });
  const loaderActive = meter.createObservableUpDownCounter('cache.loader.active', {
    description: 'Loads in flight.',
    unit: '{load}',
  });
  const l1Entries = meter.createObservableGauge('cache.l1.entries', {
    description: 'Entries held by the in-process tier.',
    unit: '{entry}',
  });
  const l1Size = meter.createObservableGauge('cache.l1.size', {
    description: 'Estimated bytes held by the in-process tier (JSON length of keys and values).',
    unit: 'By',
  });
  const circuitState = meter.createObservableGauge('cache.circuit.state', {
    description: "The shared store's circuit breaker: 1 for its current state, 0 for the others.",
    unit: '1',
  });
  const busConnected = meter.createObservableGauge('cache.bus.connected', {
    description: 'Whether the invalidation bus hears the other instances (1) or not (0).',
    unit: '1',
  });
  const busMessages = meter.createObservableCounter('cache.bus.messages', {
    description: 'Invalidation messages sent to (out) and heard from (in) the other instances.',
    unit: '{message}',
  });
  const busGaps = meter.createObservableCounter('cache.bus.gaps', {
    description:
      'Times the bus heard again after a gap (each drops the L1 entries written before).',
    unit: '{gap}',
  });
  const lockWaits = meter.createObservableCounter('cache.lock.waits', {
    description: 'Loads that waited for the fleet-wide lock, by outcome.',
    unit: '{wait}',
  });
  const observables = [
    requests,
    errors,
    loaderTimeouts,
    loaderActive,
    l1Entries,
    l1Size,
    circuitState,
    busConnected,
    busMessages,
    busGaps,
    lockWaits,
  ];

  // Attribute sets are built once, not per collection or per record.
  const kindAttributes: Attributes[] = REQUEST_KINDS.map((kind) => ({
    ...base,
    'cache.operation': snakeCase(kind.operation),
    'cache.result': kind.result,
    ...(kind.tier === undefined ? {} : { 'cache.tier': kind.tier }),
  }));
  const errorAttributes = new Map<string, Attributes>();
  const circuitAttributes = CIRCUIT_STATES.map((state) => ({
    ...base,
    'cache.circuit.state': state,
  }));
  const busIn: Attributes = { ...base, 'cache.bus.direction': 'in' };
  const busOut: Attributes = { ...base, 'cache.bus.direction': 'out' };
  const lockAttributes = LOCK_OUTCOMES.map((outcome) => ({
    ...base,
    'cache.lock.outcome': outcome,
  }));
  const loaderAttributes = (result: 'success' | 'error', background: boolean): Attributes => ({
    ...base,
    'cache.loader.result': result,
    'cache.loader.background': background,
  });
  const loaded = [loaderAttributes('success', false), loaderAttributes('success', true)];
  const failed = [loaderAttributes('error', false), loaderAttributes('error', true)];

  /** Observes every observable once: `stats()` is computed once per collection. */
  const observe: OtelBatchCallback = (result) => {
    const { counters } = stack;
    const stats = stack.stats();
    const { requests: byKind } = counters;
    for (let index = 0; index < byKind.length; index++) {
      const count = byKind[index] ?? 0;
      if (count > 0) result.observe(requests, count, kindAttributes[index]);
    }
    for (const [operation, count] of counters.errors) {
      let attributes = errorAttributes.get(operation);
      if (!attributes) {
        attributes = { ...base, 'cache.operation': snakeCase(operation) };
        errorAttributes.set(operation, attributes);
      }
      if (count > 0) result.observe(errors, count, attributes);
    }
    if (stats.loader.timeouts > 0) result.observe(loaderTimeouts, stats.loader.timeouts, base);
    result.observe(loaderActive, stack.loadsInFlight, base);
    const l1 = stats.tiers.l1;
    if (l1) {
      result.observe(l1Entries, l1.entries, base);
      result.observe(l1Size, l1.bytes, base);
    }
    const circuit = stats.tiers.l2?.circuit;
    if (circuit !== undefined) {
      CIRCUIT_STATES.forEach((state, index) =>
        result.observe(circuitState, state === circuit ? 1 : 0, circuitAttributes[index]),
      );
    }
    const bus = stats.bus;
    if (bus.state !== 'off') {
      result.observe(busConnected, bus.connected ? 1 : 0, base);
      if (bus.received > 0) result.observe(busMessages, bus.received, busIn);
      if (bus.published > 0) result.observe(busMessages, bus.published, busOut);
      if (bus.gaps > 0) result.observe(busGaps, bus.gaps, base);
    }
    const { lock } = stats;
    [lock.acquired, lock.found, lock.timeouts, lock.unavailable].forEach((count, index) => {
      if (count > 0) result.observe(lockWaits, count, lockAttributes[index]);
    });
  };
  const unobserve = observeInBatch(meter, observe, observables);

  const listeners = [
    stack.events.on('loader.done', ({ durationMs, background }) =>
      loaderDuration.record(durationMs / 1000, loaded[background ? 1 : 0]),
    ),
    stack.events.on('loader.error', ({ durationMs, background }) =>
      loaderDuration.record(durationMs / 1000, failed[background ? 1 : 0]),
    ),
  ];

  let stopped = false;
  return {
    stop(): void {
      if (stopped) return;
      stopped = true;
      unobserve();
      for (const off of listeners) off();
    },
  };
}

const CIRCUIT_STATES = ['closed', 'open', 'half-open'] as const;
const LOCK_OUTCOMES = ['acquired', 'found', 'timeout', 'unavailable'] as const;

/**
 * Registers `observe` for all `observables` at once (one `stats()` per collection); before
 * @opentelemetry/api 1.3, one callback per observable, each keeping its own observations.
 * Returns the function that removes them.
 */
function observeInBatch(
  meter: OtelMeter,
  observe: OtelBatchCallback,
  observables: OtelObservable[],
): () => void {
  if (meter.addBatchObservableCallback && meter.removeBatchObservableCallback) {
    meter.addBatchObservableCallback(observe, observables);
    return () => meter.removeBatchObservableCallback?.(observe, observables);
  }
  const callbacks = observables.map((observable) => {
    const callback: OtelObservableCallback = (result) =>
      observe({
        observe: (target, value, attributes) => {
          if (target === observable) result.observe(value, attributes);
        },
      });
    observable.addCallback(callback);
    return () => observable.removeCallback(callback);
  });
  return () => callbacks.forEach((remove) => remove());
}

function loadOtelApi(): OtelApi {
  try {
    // Optional peer dependency, loaded only when metrics are on without a meter provider.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@opentelemetry/api') as OtelApi;
  } catch (error) {
    throw new CacheConfigError(
      'Invalid CacheModule option "metrics": true needs the optional peer @opentelemetry/api ' +
        '(npm install @opentelemetry/api), whose global meter provider the cache records on, ' +
        'or pass metrics: { meterProvider } with a provider of your own. It could not be ' +
        `loaded: ${describeError(error)}.`,
    );
  }
}

/** This package's version (the meter's), or `undefined` when package.json cannot be read. */
function packageVersion(): string | undefined {
  try {
    // lib/diagnostics (sources) and dist/diagnostics (build) both sit two levels under the root.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { version } = require('../../package.json') as { version?: unknown };
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}

/** `deleteByPrefix` and `DELETE_BY_PREFIX` alike become `delete_by_prefix`. */
function snakeCase(operation: string): string {
  return operation.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}
