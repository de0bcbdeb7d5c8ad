import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { CacheConfigError, CacheKeyError } from '../../lib';
import { describeError, escapeLogLine, quote } from '../../lib/utils/describe-value';
import { CacheLogger, RateLimitedLogger } from '../../lib/utils/rate-limited-logger';
import { redact, registerRedisSecrets, registerSecret } from '../../lib/utils/redact';
import { CapturingLogger } from '../support/logs';

/** A fresh marker: text that appears nowhere unless a password (or a piece of it) leaked. */
function marker(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Passwords with the characters `new URL` accepts in a userinfo, and some it rejects; each ends
 * with a unique marker right after the awkward character, so a partial leak is caught too.
 */
function hostilePasswords(): string[] {
  return [
    ' ',
    '@',
    ':',
    '%20',
    '%40',
    '%2F',
    '%3a',
    '\u00e4\u00f6 \u2713',
    '"\\',
    '#',
    '/',
    '?',
    '\t',
    '\n',
    '%',
    '+',
    '&=',
    "'",
    '\u2028',
    '\ud83d\ude00',
  ].map((special) => `pw${special}${marker()}`);
}

function markerOf(password: string): string {
  return password.slice(-12);
}

describe('quote', () => {
  it('writes text as a JSON string, so a newline or a quote cannot end the line or the value', () => {
    expect(quote('user:1')).toBe('"user:1"');
    expect(quote('a\nWARN [CacheModule] forged')).toBe('"a\\nWARN [CacheModule] forged"');
    expect(quote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(quote('\r\t\u0000\u001b[31m')).toBe('"\\r\\t\\u0000\\u001b[31m"');
  });

  it('escapes what JSON leaves raw but a terminal or log viewer treats as a break or a reordering', () => {
    for (const char of [
      '\u007f',
      '\u0085',
      '\u009b',
      '\u2028',
      '\u2029',
      '\u202e',
      '\u2066',
      '\u061c',
    ]) {
      const quoted = quote(`a${char}b`);
      expect(quoted).not.toContain(char);
      expect(quoted).toBe(`"a\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}b"`);
    }
  });

  it('escapes unpaired surrogates and keeps pairs', () => {
    expect(quote('\ud800')).toBe('"\\ud800"');
    expect(quote('\udc00x')).toBe('"\\udc00x"');
    expect(quote('\ud83d\ude00')).toBe('"\ud83d\ude00"');
    expect(quote('\ud800')).not.toBe(quote('\ufffd'));
  });

  it('cuts very long text, saying how much is left out', () => {
    const quoted = quote('k'.repeat(5000));
    expect(quoted.length).toBeLessThan(1100);
    expect(quoted).toContain('(4000 more characters)');
  });
});

describe('escapeLogLine', () => {
  it('leaves ordinary lines alone and escapes every line break and control character', () => {
    expect(escapeLogLine('Cache GET "a" failed')).toBe('Cache GET "a" failed');
    const escaped = escapeLogLine('a\nb\rc\u2028d\u0085e\u001bf\ud800g');
    expect(escaped).toBe('a\\nb\\rc\\u2028d\\u0085e\\u001bf\\ud800g');
    // eslint-disable-next-line no-control-regex -- control characters are what is checked
    expect(escaped).not.toMatch(/[\n\r\u2028\u0085\u001b]/);
  });
});

describe('describeError', () => {
  it("quotes a user error's message and keeps this module's own messages as they are", () => {
    expect(describeError(new Error('boom\nWARN forged'))).toBe('"boom\\nWARN forged"');
    expect(describeError('plain')).toBe('"plain"');
    expect(describeError(new CacheKeyError('Key "a" is bad'))).toBe('Key "a" is bad');
  });

  it('never throws, whatever was thrown', () => {
    const hostile = {
      toString() {
        throw new Error('no');
      },
    };
    expect(describeError(hostile)).toBe('an error that cannot be printed');
    expect(describeError(Symbol('s'))).toBe('"Symbol(s)"');
  });
});

describe('redact', () => {
  it('masks the userinfo password of a URL, whatever characters it holds', () => {
    for (const password of hostilePasswords()) {
      const url = `redis://user:${password}@127.0.0.1:6379/0`;
      const redacted = redact(url);
      expect(redacted).not.toContain(markerOf(password));
      expect(redacted.startsWith('redis://user:***@')).toBe(true);
    }
  });

  it('masks a lone userinfo (no ":"), URLs in free text and password query parameters', () => {
    expect(redact('redis://s3cret-token@host:6379')).toBe('redis://***@host:6379');
    expect(redact('failed on redis://u:pw@h:1 and rediss://:x@h:2/0 now')).toBe(
      'failed on redis://u:***@h:1 and rediss://:***@h:2/0 now',
    );
    expect(redact('redis://h:6379/0?db=1&password=top secret&x=1')).toBe(
      'redis://h:6379/0?db=1&password=***&x=1',
    );
    expect(redact('see redis://h:1/?sentinelPassword=abc&q')).toBe(
      'see redis://h:1/?sentinelPassword=***&q',
    );
  });

  it('leaves URLs without userinfo, and free text with an unrelated "@", alone', () => {
    expect(redact('Redis at redis://127.0.0.1:6379/0')).toBe('Redis at redis://127.0.0.1:6379/0');
    expect(redact('failed: redis://127.0.0.1:6379; mail ops@example.com')).toBe(
      'failed: redis://127.0.0.1:6379; mail ops@example.com',
    );
    // A text that is a URL the parser rejects is masked up to its last '@', to be safe.
    expect(redact('redis://127.0.0.1:6379 x@y')).toBe('redis://127.0.0.1:***@y');
  });

  it('masks a registered password everywhere: raw, decoded, percent-encoded (any case), JSON-escaped', () => {
    for (const password of hostilePasswords()) {
      registerSecret(password);
      const id = markerOf(password);
      const forms = [
        password,
        encodeURIComponent(password),
        encodeURIComponent(password).replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()),
        JSON.stringify(password),
        quote(password),
        `prefix${password}suffix`,
      ];
      for (const form of forms) {
        const redacted = redact(`error: ${form} (again: ${form})`);
        expect(redacted).not.toContain(id);
      }
    }
  });

  it('registers the passwords of every Redis configuration shape', () => {
    const inUrl = `pa ss${marker()}`;
    const inQuery = `q${marker()}`;
    const option = `opt${marker()}`;
    const sentinel = `sen${marker()}`;
    const node = `node/${marker()}`;
    const clusterOption = `co${marker()}`;
    const client = `cl${marker()}`;
    registerRedisSecrets({ url: `redis://u:${inUrl}@h:1/0?password=${inQuery}` });
    registerRedisSecrets({ host: 'h', password: option, sentinelPassword: sentinel });
    registerRedisSecrets({
      cluster: [`redis://:${encodeURIComponent(node)}@h:7000`, { host: 'h', port: 7001 }],
      clusterOptions: { redisOptions: { password: clusterOption } },
    });
    registerRedisSecrets({ client: { options: { password: client } } });
    for (const secret of [inUrl, inQuery, option, sentinel, node, clusterOption, client]) {
      expect(redact(`text ${secret} text`)).toBe('text *** text');
    }
  });

  it('masks a password with "/", "?" or "#" in a URL the parser rejects, up to its last "@"', () => {
    for (const special of ['/', '?', '#', '/?#']) {
      const id = marker();
      expect(redact(`redis://:a${special}${id}@host:6379`)).toBe('redis://:***@host:6379');
    }
  });
});

describe('CacheLogger and RateLimitedLogger', () => {
  let capture: CapturingLogger;
  beforeEach(() => {
    capture = new CapturingLogger();
    Logger.overrideLogger(capture);
  });
  afterEach(() => Logger.overrideLogger(new Logger()));

  it('mask passwords and escape line breaks in every line they write', () => {
    const password = `log pw${marker()}`;
    registerSecret(password);
    const logger = new CacheLogger();
    logger.warn(`x ${password}\nWARN [CacheModule] forged`);
    logger.error(`redis://u:${password}@h`, `Error: ${password}\n    at stack`);
    logger.log('fine');
    new RateLimitedLogger(new Logger('CacheModule')).warn('t', `k\r\n${password}`);
    const text = capture.lines.map((l) => `${l.message} ${l.context ?? ''}`).join('\n');
    expect(text).not.toContain(markerOf(password));
    for (const line of capture.lines) expect(line.message).not.toMatch(/[\n\r]/);
    expect(capture.lines[0].message).toBe('x ***\\nWARN [CacheModule] forged');
    expect(capture.lines[1].context).toContain('Error: ***\n    at stack');
    expect(capture.lines.every((l) => (l.context ?? '').includes('CacheModule'))).toBe(true);
  });
});

describe('CacheError', () => {
  it('never carries a password in its message or stack', () => {
    const password = `err pw${marker()}`;
    registerSecret(password);
    const error = new CacheConfigError(`bad ${password} and redis://:${password}@h`);
    expect(error.message).toBe('bad *** and redis://:***@h');
    expect(error.stack).not.toContain(markerOf(password));
  });
});
