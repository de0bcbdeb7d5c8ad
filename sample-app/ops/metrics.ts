import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

/**
 * The OpenTelemetry SDK of the sample app: a meter provider whose one reader is a Prometheus
 * exporter read by the app itself (`GET /metrics`), not served on a port of its own.
 */
const prometheus = new PrometheusExporter({ preventServerStart: true });

/** Passed to `CacheModule.forRoot({ metrics: { meterProvider } })`. */
export const meterProvider = new MeterProvider({ readers: [prometheus] });

const serializer = new PrometheusSerializer();

/** Every instrument of {@link meterProvider} now, in the Prometheus text exposition format. */
export async function prometheusText(): Promise<string> {
  const { resourceMetrics, errors } = await prometheus.collect();
  if (errors.length > 0) throw new AggregateError(errors, 'collecting metrics failed');
  return serializer.serialize(resourceMetrics);
}
