import { asError, delay, TimeoutError, withTimeout } from '../../lib/utils/timeout';

describe('withTimeout', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('resolves with the work when it settles in time, and clears its timer', async () => {
    const result = withTimeout(Promise.resolve(7), 100);
    await expect(result).resolves.toBe(7);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('rejects with TimeoutError once the budget is spent', async () => {
    const never = new Promise<number>(() => undefined);
    const result = withTimeout(never, 100);
    jest.advanceTimersByTime(99);
    let settled = false;
    void result.catch(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    jest.advanceTimersByTime(1);
    await expect(result).rejects.toBeInstanceOf(TimeoutError);
    await expect(result).rejects.toThrow('no answer within 100 ms');
  });

  it('uses the error onTimeout makes', async () => {
    const result = withTimeout(new Promise(() => undefined), 5, () => new Error('custom'));
    jest.advanceTimersByTime(5);
    await expect(result).rejects.toThrow('custom');
  });

  it('passes a rejection through as an Error, and turns a synchronous throw into one', async () => {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a non-Error rejection is the case tested
    await expect(withTimeout(Promise.reject('text'), 100)).rejects.toThrow('text');
    await expect(
      withTimeout(() => {
        throw new Error('sync');
      }, 100),
    ).rejects.toThrow('sync');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('does not bound the work when ms is 0', async () => {
    const work = Promise.resolve(1);
    expect(withTimeout(work, 0)).toBe(work);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('delay and asError', () => {
  it('delay resolves after the time given', async () => {
    jest.useFakeTimers();
    let done = false;
    void delay(50).then(() => (done = true));
    jest.advanceTimersByTime(49);
    await Promise.resolve();
    expect(done).toBe(false);
    jest.advanceTimersByTime(1);
    await Promise.resolve();
    expect(done).toBe(true);
    jest.useRealTimers();
  });

  it('asError keeps errors and wraps anything else', () => {
    const error = new Error('x');
    expect(asError(error)).toBe(error);
    expect(asError(42).message).toBe('42');
  });
});
