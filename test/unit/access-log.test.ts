import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { AccessLog } from '../../src/common/access-log.js';
import { RequestContext } from '../../src/common/request-context.js';
import { compileProtocols, type CompiledRoute } from '../../src/proxy/route-table.js';
import { isoNow, jsonString } from '../../src/telemetry/json-line.js';

/**
 * The access log's line, built from a template: the same bytes pino would
 * write for the same fields, valid JSON whatever the request carried, and the
 * per-route sampling of the `access-log` plugin.
 */

function capture() {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info', base: { name: 'gatehouse' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
    { write: (s: string) => void lines.push(s) },
  );
  return { lines, logger };
}

function route(name: string, service: string, accessLog?: { sample_rate: number; always_log_errors: boolean }): CompiledRoute {
  return {
    name,
    service: { name: service } as CompiledRoute['service'],
    stripPath: true,
    preserveHost: false,
    plugins: accessLog ? { 'access-log': accessLog } : {},
    phases: { access: [], response: [], log: [] },
    protocols: compileProtocols(['http', 'https'], 426),
  };
}

interface Exchange {
  method?: string;
  url?: string;
  status?: number;
  finished?: boolean;
  ip?: string;
  ctx?: Partial<RequestContext>;
  route?: CompiledRoute;
}

function exchange(e: Exchange = {}) {
  const ctx = new RequestContext(e.ctx?.requestId ?? 'e4b3c0de-7d3a-4b52-9d0e-3f1f7a8c2b11', false);
  Object.assign(ctx, e.ctx);
  ctx.path = e.ctx?.path ?? '/orders/1';
  if (e.route) ctx.match = { route: e.route, upstreamPath: ctx.path };
  const req = { method: e.method ?? 'GET', url: e.url ?? '/orders/1?access_token=secret', socket: { remoteAddress: e.ip ?? '127.0.0.1' }, gatehouse: ctx } as unknown as IncomingMessage;
  const res = { statusCode: e.status ?? 200, writableFinished: e.finished ?? true, req } as unknown as ServerResponse;
  return { req, res, ctx };
}

/** Every control character, quotes, backslashes, lone surrogates both ways, U+2028/2029, DEL, non-ASCII and an astral character. */
const HOSTILE = [
  'a"b\\c',
  '\u0000\u0001\u0007\b\t\n\u000b\f\r\u001b\u001f',
  '\ud800',
  'x\udc00y',
  '\udc00\ud800',
  'line\u2028separator\u2029paragraph',
  'del\u007f',
  '</script><!--',
  'ünïcödé 🎉',
  '\\u0000 "\\"',
  '{"level":"error"}',
];

describe('access log: a template line', () => {
  it('writes exactly the line pino writes for the same fields', () => {
    const { lines, logger } = capture();
    const log = new AccessLog(logger);
    const { req, res, ctx } = exchange({
      route: route('orders-route', 'orders'),
      status: 403,
      ctx: { caller: 'alice', denial: 'insufficient_scope', upstreamLatencyMs: 3.14159, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' },
    });
    log.record(req, res, ctx);
    const written = lines[0];
    const latency = JSON.parse(written).latency_ms;
    logger.info(
      {
        request_id: ctx.requestId,
        method: 'GET',
        path: '/orders/1',
        route: 'orders-route',
        service: 'orders',
        status: 403,
        caller: 'alice',
        reason: 'insufficient_scope',
        client_ip: '127.0.0.1',
        trace_id: ctx.traceId,
        upstream_latency_ms: 3.14,
        latency_ms: latency,
      },
      'request',
    );
    const time = /"time":"[^"]+"/;
    assert.equal(written.replace(time, ''), lines[1].replace(time, ''));
    assert.ok(written.endsWith('}\n'));
  });

  it('an aborted request without route says so, and never logs the query', () => {
    const { lines, logger } = capture();
    const { req, res, ctx } = exchange({ finished: false, ctx: { path: '' } });
    new AccessLog(logger).record(req, res, ctx);
    const line = JSON.parse(lines[0]);
    assert.equal(line.aborted, true);
    assert.equal(line.path, '/orders/1');
    assert.equal(line.route, undefined);
    assert.ok(!lines[0].includes('secret'));
  });

  it('stays one valid JSON line whatever the request carried', () => {
    const { lines, logger } = capture();
    const log = new AccessLog(logger);
    for (const s of HOSTILE) {
      const { req, res, ctx } = exchange({
        method: s,
        ip: s,
        route: route(s, s),
        ctx: { requestId: s, path: s, caller: s, denial: s },
      });
      log.record(req, res, ctx);
    }
    assert.equal(lines.length, HOSTILE.length);
    HOSTILE.forEach((s, i) => {
      const text = lines[i];
      assert.equal(text.indexOf('\n'), text.length - 1, `one line: ${JSON.stringify(text)}`);
      assert.ok(!/[\u0000-\u001f\u007f\u2028\u2029]/.test(text.slice(0, -1)), `no raw control or separator character: ${JSON.stringify(text)}`);
      assert.ok(Buffer.from(text, 'utf8').toString('utf8') === text || !/[\ud800-\udfff]/.test(text), 'no lone surrogate written raw');
      const line = JSON.parse(text);
      for (const field of ['request_id', 'method', 'path', 'route', 'service', 'caller', 'reason', 'client_ip']) assert.equal(line[field], s, field);
      assert.equal(line.level, 'info');
      assert.equal(line.msg, 'request');
    });
  });

  it('jsonString agrees with JSON.stringify, plus escaped U+2028, U+2029 and DEL', () => {
    for (const s of [...HOSTILE, '', 'plain', '/a/b-c_d.e~f', 'x'.repeat(5000)]) {
      assert.equal(JSON.parse(jsonString(s)), s);
      assert.equal(jsonString(s), JSON.stringify(s).replace(/[\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    }
  });

  it('isoNow is toISOString, also across seconds and at .000/.009/.099', () => {
    for (const t of [0, 9, 99, 999, 1000, 1_764_000_000_123, 1_764_000_000_009, 1_764_000_001_000, 1_764_000_000_999]) {
      assert.equal(isoNow(t), new Date(t).toISOString());
    }
  });
});

describe('access log: per-route sampling (access-log plugin)', () => {
  const count = (accessLog: { sample_rate: number; always_log_errors: boolean }, status: number, finished = true, n = 200) => {
    const { lines, logger } = capture();
    const log = new AccessLog(logger);
    const r = route('health', 'svc', accessLog);
    for (let i = 0; i < n; i++) {
      const { req, res, ctx } = exchange({ route: r, status, finished });
      log.record(req, res, ctx);
    }
    return lines.length;
  };

  it('sample_rate 0 silences successes; errors and aborts are still logged', () => {
    assert.equal(count({ sample_rate: 0, always_log_errors: true }, 200), 0);
    assert.equal(count({ sample_rate: 0, always_log_errors: true }, 302), 0);
    assert.equal(count({ sample_rate: 0, always_log_errors: true }, 401), 200);
    assert.equal(count({ sample_rate: 0, always_log_errors: true }, 503), 200);
    assert.equal(count({ sample_rate: 0, always_log_errors: true }, 200, false), 200);
  });

  it('always_log_errors false: errors are sampled like the rest', () => {
    assert.equal(count({ sample_rate: 0, always_log_errors: false }, 503), 0);
  });

  it('sample_rate 0.5 logs about half, 1 logs all', () => {
    const n = count({ sample_rate: 0.5, always_log_errors: true }, 200, true, 2000);
    assert.ok(n > 800 && n < 1200, `${n} of 2000`);
    assert.equal(count({ sample_rate: 1, always_log_errors: true }, 200), 200);
  });

  it('no access log below info, and a closed destination is not an error', () => {
    const lines: string[] = [];
    const quiet = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    assert.equal(new AccessLog(quiet).enabled, false, 'the proxy registers no close listener');
    assert.equal(new AccessLog(pino({ level: 'info' }, { write: () => {} })).enabled, true);
    const closed = pino({ level: 'info' }, { write: () => { throw new Error('SonicBoom destroyed'); } });
    const { req, res, ctx } = exchange();
    assert.doesNotThrow(() => new AccessLog(closed).record(req, res, ctx));
  });
});
