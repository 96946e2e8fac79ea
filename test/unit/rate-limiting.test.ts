import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseDeclarativeConfig } from '../../src/config/config.loader.js';
import { LOCAL_MAX_CALLERS, LocalCounters, type LimitWindow } from '../../src/plugins/rate-limiting/rate-limiting.counters.js';
import { rateLimitingConfigSchema, type WindowName } from '../../src/plugins/rate-limiting/rate-limiting.schema.js';
import { windowEnd, windowStart } from '../../src/plugins/rate-limiting/rate-limiting.windows.js';

function problems(config: Record<string, unknown>): string[] {
  const file = JSON.stringify({
    _format_version: '3.0',
    services: [{ name: 's', url: 'http://127.0.0.1:1', routes: [{ name: 'r', paths: ['/'], plugins: [{ name: 'rate-limiting', config }] }] }],
  });
  try {
    parseDeclarativeConfig(file, 'kong.json', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  return [];
}

const AT = 'services[0].routes[0].plugins[0].config';

function win(name: WindowName, limit: number): LimitWindow {
  return { name, limit, limitText: String(limit), limitHeader: `x-ratelimit-limit-${name}`, remainingHeader: `x-ratelimit-remaining-${name}` };
}

describe('rate-limiting: config', () => {
  it("Kong's defaults", () => {
    const c = rateLimitingConfigSchema.parse({ minute: 5 });
    assert.equal(c.limit_by, 'consumer');
    assert.equal(c.policy, 'local');
    assert.equal(c.fault_tolerant, true);
    assert.equal(c.hide_client_headers, false);
    assert.equal(c.error_code, 429);
    assert.equal(c.error_message, 'API rate limit exceeded');
    assert.deepEqual({ port: c.redis.port, database: c.redis.database, timeout: c.redis.timeout, ssl: c.redis.ssl }, { port: 6379, database: 0, timeout: 2000, ssl: false });
  });

  it('a Kong 3.8 redis block loads', () => {
    assert.deepEqual(problems({ minute: 100, policy: 'redis', redis: { host: 'redis', port: 6380, username: 'u', password: 'p', database: 2, timeout: 500, ssl: false, ssl_verify: false } }), []);
  });

  it('every problem at its path, at once', () => {
    assert.deepEqual(problems({ limit_by: 'header', policy: 'redis', redis: { ssl: true }, sync_rate: 10 }).sort(), [
      `${AT}.header_name: is required with limit_by: header`,
      `${AT}.redis.host: is required with policy: redis`,
      `${AT}.redis.ssl: TLS to Redis is not supported: use a local Redis or a TLS tunnel, and ssl: false`,
      `${AT}.sync_rate: only -1 (synchronous, exact counting) is supported`,
      `${AT}: needs at least one limit: second, minute, hour, day, month, year`,
    ].sort());
  });

  it("Kong's ordering check, the other limit_by parameters, cluster, tiers", () => {
    assert.deepEqual(problems({ second: 10, minute: 5 }), [`${AT}.minute: the limit per minute (5) cannot be lower than the limit per second (10)`]);
    assert.deepEqual(problems({ minute: 5, limit_by: 'path' }), [`${AT}.path: is required with limit_by: path`]);
    assert.deepEqual(problems({ minute: 5, limit_by: 'claim' }), [`${AT}.claim_name: is required with limit_by: claim`]);
    assert.match(problems({ minute: 5, policy: 'cluster' })[0], /policy: must be "local" .* "cluster" needs Kong's database/);
    assert.deepEqual(problems({ minute: 5, tiers: [{ claim: 'groups', value: 'gold' }] }), [`${AT}.tiers[0]: needs at least one limit: second, minute, hour, day, month, year`]);
    assert.deepEqual(problems({ minute: 5, tiers: [{ claim: 'groups', value: 'gold', minute: 1000 }] }), []);
    assert.match(problems({ minute: 5, minutes: 5 }).join('\n'), /minutes/);
  });
});

describe('rate-limiting: fixed windows (UTC)', () => {
  it('start on the boundary, end at the next', () => {
    const t = Date.UTC(2026, 1, 28, 23, 59, 59, 500);
    assert.equal(windowStart('second', t), Date.UTC(2026, 1, 28, 23, 59, 59));
    assert.equal(windowStart('minute', t), Date.UTC(2026, 1, 28, 23, 59));
    assert.equal(windowStart('hour', t), Date.UTC(2026, 1, 28, 23));
    assert.equal(windowStart('day', t), Date.UTC(2026, 1, 28));
    assert.equal(windowStart('month', t), Date.UTC(2026, 1, 1));
    assert.equal(windowEnd('month', windowStart('month', t)), Date.UTC(2026, 2, 1), 'February ends on March 1st');
    assert.equal(windowStart('year', t), Date.UTC(2026, 0, 1));
    assert.equal(windowEnd('year', windowStart('year', t)), Date.UTC(2027, 0, 1));
    assert.equal(windowEnd('minute', windowStart('minute', t)), Date.UTC(2026, 2, 1));
  });
});

describe('rate-limiting: local counters', () => {
  it('exactly the limit passes per window; a refused request consumes nothing; the next window starts at zero', () => {
    const c = new LocalCounters([win('second', 3), win('minute', 4)]);
    const t = Date.UTC(2026, 0, 1, 0, 0, 10);
    assert.deepEqual([1, 2, 3].map(() => c.take('a', t).counts), [[1, 1], [2, 2], [3, 3]]);
    const refused = c.take('a', t + 10);
    assert.equal(refused.passed, false);
    assert.deepEqual(refused.counts, [3, 3], 'the counts that refused it, not increased');
    assert.equal(c.take('b', t).passed, true, 'another caller has its own budget');
    const next = c.take('a', t + 1000);
    assert.deepEqual(next, { passed: true, counts: [1, 4] }, 'new second, same minute: the refused request did not count');
    assert.equal(c.take('a', t + 2000).passed, false, 'minute exhausted');
    assert.deepEqual(c.take('a', t + 60_000).counts, [1, 1], 'next minute');
  });

  it('bounded: past LOCAL_MAX_CALLERS the caller seen longest ago is forgotten', () => {
    const c = new LocalCounters([win('hour', 5)]);
    const t = Date.UTC(2026, 0, 1, 1);
    c.take('first', t);
    c.take('first', t);
    for (let i = 0; i < LOCAL_MAX_CALLERS; i++) c.take(`k${i}`, t);
    assert.deepEqual(c.take('first', t).counts, [1], 'forgotten, starts again');
    assert.deepEqual(c.take(`k${LOCAL_MAX_CALLERS - 1}`, t).counts, [2], 'a recent caller is remembered');
  });
});
