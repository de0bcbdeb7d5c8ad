import { Injectable } from '@nestjs/common';
import { Cacheable } from '../../lib';
import { RatesUpstream } from './rates.upstream';

/** What `GET /rates/:currency` returns. */
export interface Rate {
  currency: string;
  rate: number;
  fetchedAt: string;
}

@Injectable()
export class RatesService {
  constructor(private readonly upstream: RatesUpstream) {}

  /**
   * Fresh for 5 s, then kept 300 s more as a stale value (`grace`): when the upstream fails, or
   * takes longer than 0.2 s (`timeouts.soft`), callers get the last rate (`X-Cache: STALE`)
   * while a slow call finishes in the background and refreshes the entry.
   */
  @Cacheable('rate:{currency}', { ttl: 5, grace: 300, timeouts: { soft: 0.2 } })
  async rate(currency: string): Promise<Rate> {
    const { rate } = await this.upstream.fetchRate(currency);
    return { currency, rate, fetchedAt: new Date().toISOString() };
  }
}
