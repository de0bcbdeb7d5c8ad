import { MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { CACHE_METER_NAME } from '../../lib/diagnostics/cache-metrics';

/** A reader the test collects from when it wants (the SDK's pull path, as Prometheus uses). */
export class TestReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** The cache's metrics by instrument name, from one collection (which must report no error). */
export async function collect(reader: MetricReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0) throw new AggregateError(errors, 'collecting metrics failed');
  const found = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== CACHE_METER_NAME) continue;
    for (const metric of scope.metrics) found.set(metric.descriptor.name, metric);
  }
  return found;
}
