/**
 * What `serializer: 'rich'` (issue 17) costs, in the same run: encode and decode speed and text
 * size of the candidate formats against JSON on a realistic payload, and CacheService set/get
 * on Redis with `'rich'` against `'json'`. The numbers back the choice of devalue in the
 * README's design notes.
 */
import { deserialize as v8Deserialize, serialize as v8Serialize } from 'node:v8';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { parse as devalueParse, stringify as devalueStringify } from 'devalue';
import superjson from 'superjson';
import { CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { RICH_SERIALIZER } from '../lib/utils/serializer';
import { toRichStorable } from '../lib/utils/serializable';
import { formatOps, interleave, ratio, type Contender } from './measure';
import type { BenchContext } from './tiers';

/** A catalogue page: 50 products with dates, a stock Map, a Set of tags and a BigInt. */
function richPage(seed: number): Record<string, unknown> {
  return {
    page: seed,
    fetchedAt: new Date(1_700_000_000_000 + seed),
    items: Array.from({ length: 50 }, (_, i) => ({
      id: seed * 100 + i,
      sku: `SKU-${100_000 + i}`,
      name: `Product number ${i} with a longer display name`,
      price: 19.99 + i,
      tags: new Set(['catalogue', i % 2 ? 'sale' : 'new']),
      stock: new Map([
        ['eu-west', i * 3],
        ['us-east', i * 2],
      ]),
      updatedAt: new Date(1_700_000_000_000 + i * 1000),
      views: BigInt(i) * 1_000_000_007n,
    })),
  };
}

/** The same page as JSON can hold it: ISO strings, plain objects, arrays, a numeric string. */
function jsonPage(seed: number): Record<string, unknown> {
  return JSON.parse(
    JSON.stringify(richPage(seed), (_, v: unknown) =>
      v instanceof Map
        ? Object.fromEntries(v)
        : v instanceof Set
          ? [...v]
          : typeof v === 'bigint'
            ? v.toString()
            : v,
    ),
  ) as Record<string, unknown>;
}

interface Codec {
  name: string;
  /** What it encodes: the rich page, or the JSON page for JSON. */
  rich: boolean;
  encode(value: unknown): string | Buffer;
  decode(text: string | Buffer): unknown;
}

const CODECS: Codec[] = [
  {
    name: 'JSON (serializer: json)',
    rich: false,
    encode: (v) => JSON.stringify(v),
    decode: (t) => JSON.parse(t as string),
  },
  {
    name: 'devalue (serializer: rich)',
    rich: true,
    encode: (v) => RICH_SERIALIZER.serialize(v),
    decode: (t) => RICH_SERIALIZER.deserialize(t as string),
  },
  {
    name: 'devalue, bare',
    rich: true,
    encode: (v) => devalueStringify(v),
    decode: (t) => devalueParse(t as string),
  },
  {
    name: 'superjson',
    rich: true,
    encode: (v) => superjson.stringify(v),
    decode: (t) => superjson.parse(t as string),
  },
  {
    name: 'v8.serialize (binary)',
    rich: true,
    encode: (v) => v8Serialize(v),
    decode: (t) => v8Deserialize(t as Buffer) as unknown,
  },
  {
    name: 'v8.serialize + base64 (text)',
    rich: true,
    encode: (v) => v8Serialize(v).toString('base64'),
    decode: (t) => v8Deserialize(Buffer.from(t as string, 'base64')) as unknown,
  },
];

async function codecs(ctx: BenchContext): Promise<void> {
  const rich = richPage(1);
  const json = jsonPage(1);
  const encoded = CODECS.map((c) => c.encode(c.rich ? rich : json));
  const sizeOf = (e: string | Buffer) => (typeof e === 'string' ? Buffer.byteLength(e) : e.length);
  const loop =
    (fn: () => unknown): Contender['run'] =>
    (ops) => {
      for (let i = 0; i < ops; i++) fn();
      return Promise.resolve();
    };
  const options = { rounds: ctx.rounds, roundMs: ctx.roundMs };
  const encodes = await interleave(
    CODECS.map((c) => ({ name: c.name, run: loop(() => c.encode(c.rich ? rich : json)) })),
    options,
  );
  const decodes = await interleave(
    CODECS.map((c, i) => ({ name: c.name, run: loop(() => c.decode(encoded[i])) })),
    options,
  );
  const jsonSize = sizeOf(encoded[0]);
  ctx.log(
    '### Encode and decode of one catalogue page (50 products with Dates, a Map, a Set, a BigInt)',
  );
  ctx.log(
    '- JSON encodes the same page as JSON can hold it (ISO strings, objects, arrays); the others the rich page',
  );
  ctx.table(
    ['format', 'encode/s', 'encode ÷ JSON', 'decode/s', 'decode ÷ JSON', 'bytes', 'bytes ÷ JSON'],
    CODECS.map((c, i) => [
      c.name,
      formatOps(encodes[i].opsPerSec),
      ratio(encodes[i].opsPerSec, encodes[0].opsPerSec),
      formatOps(decodes[i].opsPerSec),
      ratio(decodes[i].opsPerSec, decodes[0].opsPerSec),
      String(sizeOf(encoded[i])),
      (sizeOf(encoded[i]) / jsonSize).toFixed(2) + '×',
    ]),
  );
  // What each keeps of the listed types (Buffer and typed arrays included).
  const probe = {
    buffer: Buffer.from('ab'),
    floats: new Float32Array([1.5]),
    nested: { u: undefined, z: -0, n: NaN },
  };
  const kept = CODECS.slice(1).map((c) => {
    try {
      const back = c.decode(c.encode(c === CODECS[1] ? toRichStorable(probe, 'k') : probe)) as {
        buffer: unknown;
        floats: unknown;
        nested: { z: number };
      };
      const buffer = Buffer.isBuffer(back.buffer) ? 'Buffer' : describe(back.buffer);
      const floats = back.floats instanceof Float32Array ? 'Float32Array' : describe(back.floats);
      return [c.name, buffer, floats, Object.is(back.nested.z, -0) ? 'yes' : 'no'];
    } catch (error) {
      return [c.name, `throws: ${(error as Error).message}`, '', ''];
    }
  });
  ctx.log('### What comes back');
  ctx.table(['format', 'a Buffer reads as', 'a Float32Array reads as', '-0 kept'], kept);
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  return value.constructor?.name ?? 'object';
}

let apps = 0;

async function cacheWith(options: CacheModuleOptions) {
  @Module({ imports: [CacheModule.forRoot(options)] })
  class SerializerBenchModule {}
  const app = await NestFactory.createApplicationContext(SerializerBenchModule, {
    logger: false,
  });
  await app.init();
  return { app, cache: app.get(CacheService) };
}

async function onRedis(ctx: BenchContext): Promise<void> {
  const N = 200;
  const setups = [
    { name: "'json', JSON page", serializer: 'json' as const, page: jsonPage },
    { name: "'rich', JSON page", serializer: 'rich' as const, page: jsonPage },
    { name: "'rich', rich page", serializer: 'rich' as const, page: richPage },
  ];
  const booted = await Promise.all(
    setups.map((s) =>
      cacheWith({
        provider: 'redis',
        redis: { url: ctx.url },
        namespace: `bench-ser-${process.pid}-${++apps}`,
        ttl: 600,
        serializer: s.serializer,
      }),
    ),
  );
  try {
    const pages = setups.map((s) => Array.from({ length: N }, (_, i) => s.page(i)));
    const options = { rounds: ctx.rounds, roundMs: ctx.roundMs };
    const sets = await interleave(
      setups.map((s, k) => ({
        name: s.name,
        run: async (ops: number) => {
          for (let i = 0; i < ops; i++) await booted[k].cache.set(`p:${i % N}`, pages[k][i % N]);
        },
      })),
      options,
    );
    // Every page stored, whatever number of sets the calibration ran.
    for (const [k] of setups.entries()) {
      for (let i = 0; i < N; i++) await booted[k].cache.set(`p:${i}`, pages[k][i]);
    }
    const gets = await interleave(
      setups.map((s, k) => ({
        name: s.name,
        run: async (ops: number) => {
          for (let i = 0; i < ops; i++) {
            if ((await booted[k].cache.get(`p:${i % N}`)) === undefined) {
              throw new Error(`serializer: p:${i % N} missed (${s.name})`);
            }
          }
        },
      })),
      options,
    );
    ctx.log('### CacheService set and get on Redis, one catalogue page per entry, one caller');
    ctx.table(
      ['serializer, payload', 'set/s', 'set ÷ json', 'get/s', 'get ÷ json'],
      setups.map((s, k) => [
        s.name,
        formatOps(sets[k].opsPerSec),
        ratio(sets[k].opsPerSec, sets[0].opsPerSec),
        formatOps(gets[k].opsPerSec),
        ratio(gets[k].opsPerSec, gets[0].opsPerSec),
      ]),
    );
  } finally {
    await Promise.all(booted.map(({ app }) => app.close()));
  }
}

/** Runs the serializer scenario: its tables go to `ctx.log`. */
export async function serializerScenario(ctx: BenchContext): Promise<void> {
  ctx.log("## Serializer: 'rich' (devalue) against 'json', and the other candidates");
  ctx.log();
  await codecs(ctx);
  await onRedis(ctx);
}
