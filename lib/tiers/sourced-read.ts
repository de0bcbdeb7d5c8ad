import type { CacheTierName } from '../interfaces/cache-events.interface';

/** A tier as the hot path passes it: 0 = `l1` (in-process), 1 = `l2` (shared). @internal */
export type Tier = 0 | 1;
/** The in-process tier. @internal */
export const L1: Tier = 0;
/** The shared tier. @internal */
export const L2: Tier = 1;
/** The name of each {@link Tier}, by number. @internal */
export const TIER_NAMES: readonly [CacheTierName, CacheTierName] = ['l1', 'l2'];

/** What a read of the tiers found, and which tier held it. @internal */
export interface SourcedRead {
  readonly value: unknown;
  readonly tier: Tier;
}
