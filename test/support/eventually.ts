/** Resolves once `check` answers true; rejects after `ms` (polling every `every` ms). */
export async function eventually(
  check: () => Promise<boolean>,
  ms = 20_000,
  every = 50,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`condition not met within ${ms} ms`);
}
