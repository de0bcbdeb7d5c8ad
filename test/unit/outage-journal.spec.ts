import { OutageJournal } from '../../lib/tiers/outage-journal';

describe('OutageJournal', () => {
  it('covers recorded keys and keys under recorded prefixes', () => {
    const journal = new OutageJournal(10);
    expect(journal.empty).toBe(true);
    journal.recordKey('user:1');
    journal.recordPrefix('order:');
    expect(journal.covers('user:1')).toBe(true);
    expect(journal.covers('user:10')).toBe(false);
    expect(journal.covers('order:7')).toBe(true);
    expect(journal.size).toBe(2);
  });

  it('collapses into a namespace clear beyond maxKeys, and says so', () => {
    const overflows: string[] = [];
    const journal = new OutageJournal(2, (what) => overflows.push(what));
    journal.recordKey('a');
    journal.recordKey('b');
    journal.recordKey('c');
    expect(journal.clearsAll).toBe(true);
    expect(journal.covers('anything')).toBe(true);
    expect(journal.snapshot()).toEqual({ all: true, prefixes: [], keys: [], tags: new Map() });
    expect(overflows).toEqual(['more than 2 keys']);
  });

  it('collapses into a namespace clear beyond maxPrefixes', () => {
    const journal = new OutageJournal(10, undefined, 1);
    journal.recordPrefix('a:');
    journal.recordPrefix('b:');
    expect(journal.clearsAll).toBe(true);
  });

  it('settle forgets only what the snapshot held', () => {
    const journal = new OutageJournal(10);
    journal.recordKey('a');
    journal.recordPrefix('p:');
    const snapshot = journal.snapshot();
    journal.recordKey('b');
    journal.settle(snapshot);
    expect(journal.covers('a')).toBe(false);
    expect(journal.covers('p:1')).toBe(false);
    expect(journal.covers('b')).toBe(true);
    journal.recordClear();
    const all = journal.snapshot();
    journal.settle(all);
    expect(journal.empty).toBe(true);
  });
});
