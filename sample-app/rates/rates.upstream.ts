import { Injectable, ServiceUnavailableException } from '@nestjs/common';

/** How the upstream behaves now: `POST /rates/upstream` changes it while the app runs. */
export interface UpstreamMode {
  /** Every call throws (503) while this is `true`. */
  failing: boolean;
  /** Milliseconds each call takes. */
  delayMs: number;
}

/**
 * A stand-in for a slow third-party API (exchange rates), so the sample shows what `grace` and
 * `timeouts.soft` do without a network: it answers after `delayMs`, and fails on demand.
 */
@Injectable()
export class RatesUpstream {
  private mode: UpstreamMode = { failing: false, delayMs: 50 };
  /** Calls made, failed ones included, so the cache's effect is visible. */
  calls = 0;

  get current(): UpstreamMode {
    return { ...this.mode };
  }

  /** Changes the mode; fields left out keep their value. */
  configure(change: Partial<UpstreamMode>): UpstreamMode {
    this.mode = { ...this.mode, ...change };
    return this.current;
  }

  async fetchRate(currency: string): Promise<{ currency: string; rate: number }> {
    this.calls++;
    const { failing, delayMs } = this.mode;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (failing) throw new ServiceUnavailableException('rates upstream is down');
    // A rate that moves a little on every call, so a fresh answer is told from a cached one.
    return { currency, rate: Number((1 + Math.random() / 10).toFixed(4)) };
  }
}
