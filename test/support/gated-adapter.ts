import { MemoryCacheAdapter } from '../../lib';

/** A promise that a test opens when it wants: `await gate.wait` blocks until `gate.open()`. */
export class Gate {
  readonly wait: Promise<void>;
  open!: () => void;

  constructor() {
    this.wait = new Promise<void>((resolve) => (this.open = resolve));
  }
}

/**
 * A memory adapter whose deletes can be held back (`holdDeletes`) or made to fail
 * (`failDeletes`), and which records what happened, so tests can see where and when
 * invalidation work runs.
 */
export class GatedAdapter extends MemoryCacheAdapter {
  readonly events: string[] = [];
  holdDeletes: Gate | undefined;
  failDeletes = 0;

  override async delete(key: string): Promise<boolean> {
    await this.before(`delete ${key}`);
    return super.delete(key);
  }

  override async deleteByPrefix(prefix: string): Promise<number> {
    await this.before(`deleteByPrefix ${prefix}`);
    return super.deleteByPrefix(prefix);
  }

  private async before(what: string): Promise<void> {
    this.events.push(`start ${what}`);
    if (this.holdDeletes) await this.holdDeletes.wait;
    if (this.failDeletes > 0) {
      this.failDeletes--;
      this.events.push(`fail ${what}`);
      throw new Error(`injected failure: ${what}`);
    }
    this.events.push(`done ${what}`);
  }
}
