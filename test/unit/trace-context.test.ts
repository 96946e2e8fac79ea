import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import pino from 'pino';
import { idpCallKind } from '../../src/common/bounded.fetch.js';
import { RequestContext } from '../../src/common/request-context.js';
import { SettingsError } from '../../src/config/gateway-settings.js';
import type { UpstreamService } from '../../src/proxy/route-table.js';
import { newSpanId, newTraceId, parseTraceparent, validTracestate } from '../../src/telemetry/trace-context.js';
import { activeTracing, PROPAGATION_ONLY, startTracing, stopTracing, type TraceHeaderSlots } from '../../src/telemetry/tracing.js';
import { readTracingSettings } from '../../src/telemetry/tracing-settings.js';

/** W3C Trace Context parsing, propagation without the SDK, the OTEL_* settings, and the SDK loaded only when asked for. */

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('traceparent (W3C Trace Context §3.2)', () => {
  it('accepts version 00 exactly, and later versions by their first fields', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7', flags: '01' });
    assert.equal(parseTraceparent(VALID.replace(/-01$/, '-00'))?.flags, '00');
    assert.equal(parseTraceparent(`cc${VALID.slice(2)}`)?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(parseTraceparent(`cc${VALID.slice(2)}-what-follows`)?.parentId, '00f067aa0ba902b7');
  });

  const invalid: [string, string | undefined][] = [
    ['absent', undefined],
    ['empty', ''],
    ['version ff', `ff${VALID.slice(2)}`],
    ['upper-case hex', VALID.toUpperCase()],
    ['zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['version 00 with more', `${VALID}-extra`],
    ['later version, no dash after', `cc${VALID.slice(2)}x`],
    ['short trace id', '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01'],
    ['non-hex', '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01'],
    ['two joined by Node', `${VALID}, ${VALID}`],
    ['spaces for dashes', VALID.replace(/-/g, ' ')],
    ['quote and backslash', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"\\'],
  ];
  for (const [name, value] of invalid) it(`refuses ${name}`, () => assert.equal(parseTraceparent(value), undefined));

  it('tracestate: list-members kept, malformed or oversized dropped', () => {
    assert.equal(validTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    assert.equal(validTracestate('tenant@vendor=v, ,x=1'), 'tenant@vendor=v, ,x=1');
    assert.equal(validTracestate('no-equals'), undefined);
    assert.equal(validTracestate('UPPER=1'), undefined);
    assert.equal(validTracestate('a=b,c="\\'), 'a=b,c="\\', 'quotes and backslashes are value characters (§3.3.1.3.2)');
    assert.equal(validTracestate('a=b,c=\u00e9'), undefined);
    assert.equal(validTracestate('a=b,c=x,'), 'a=b,c=x,');
    assert.equal(validTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined);
    assert.equal(validTracestate(`a=${'x'.repeat(520)}`), undefined);
    assert.equal(validTracestate(undefined), undefined);
  });

  it('new ids are lower-case hex of the right length, never zero, all different', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      ids.add(t);
    }
    assert.equal(ids.size, 1000);
  });
});

describe('propagation without the SDK', () => {
  const service = { name: 'api', origin: 'http://127.0.0.1:1', hostname: '127.0.0.1', port: 1 } as UpstreamService;
  const send = (headers: Record<string, string>) => {
    const ctx = new RequestContext('r', false);
    const slots: TraceHeaderSlots = {};
    PROPAGATION_ONLY.upstream({ headers } as unknown as IncomingMessage, ctx, service, '/', slots);
    return { slots, ctx };
  };

  it('a valid traceparent and its tracestate go upstream unchanged', () => {
    const { slots, ctx } = send({ traceparent: VALID, tracestate: 'rojo=00f067aa0ba902b7' });
    assert.deepEqual(slots, { traceparent: VALID, tracestate: 'rojo=00f067aa0ba902b7' });
    assert.equal(ctx.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('absent or malformed: a new sampled trace, the tracestate dropped', () => {
    const variants: Record<string, string>[] = [{}, { traceparent: 'garbage', tracestate: 'rojo=1' }, { traceparent: VALID.toUpperCase() }];
    for (const headers of variants) {
      const { slots, ctx } = send(headers);
      const sent = parseTraceparent(slots.traceparent);
      assert.ok(sent, slots.traceparent);
      assert.equal(sent.flags, '01');
      assert.equal(sent.traceId, ctx.traceId);
      assert.notEqual(sent.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(slots.tracestate, undefined);
    }
  });
});

describe('OTEL_* settings', () => {
  it('no endpoint, SDK disabled or exporter none: nothing to export', () => {
    assert.equal(readTracingSettings({}), undefined);
    assert.equal(readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.equal(readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), undefined);
  });

  it('defaults: protobuf, parentbased_always_on, service name gatehouse, no caller', () => {
    assert.deepEqual(readTracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), {
      protocol: 'http/protobuf',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      serviceName: 'gatehouse',
      recordCaller: false,
    });
    const s = readTracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://c',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=edge',
      GATEHOUSE_TRACE_CALLER: 'true',
    });
    assert.deepEqual(s, { protocol: 'http/json', sampler: 'parentbased_traceidratio', samplerRatio: 0.25, serviceName: undefined, recordCaller: true });
  });

  it('what cannot be honoured is refused at start, every problem named', () => {
    assert.throws(
      () =>
        readTracingSettings({
          OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
          OTEL_TRACES_SAMPLER: 'jaeger_remote',
          GATEHOUSE_TRACE_CALLER: 'yes',
        }),
      (err: SettingsError) => {
        assert.ok(err instanceof SettingsError);
        assert.deepEqual(err.problems.map((p) => p.path), ['GATEHOUSE_TRACE_CALLER', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_TRACES_SAMPLER']);
        return true;
      },
    );
    assert.throws(() => readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /OTEL_TRACES_SAMPLER_ARG/);
    assert.throws(() => readTracingSettings({ OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER/);
  });
});

describe('IdP call kinds (span names)', () => {
  const cases: [string, RequestInit, string][] = [
    ['https://idp/token', { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code: 'c' }) }, 'token'],
    ['https://idp/token', { method: 'POST', body: 'grant_type=refresh_token&refresh_token=r' }, 'refresh'],
    ['https://idp/token', { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) }, 'token'],
    ['https://idp/introspect', { method: 'POST', body: new URLSearchParams({ token: 't' }) }, 'introspection'],
    ['https://idp/oauth2/revoke', { method: 'POST', body: new URLSearchParams({ token: 't' }) }, 'revocation'],
    ['https://idp/userinfo', { method: 'GET' }, 'userinfo'],
  ];
  for (const [url, init, kind] of cases) it(`${init.method} ${url} → ${kind}`, () => assert.equal(idpCallKind(url, init), kind));
});

describe('the SDK is loaded only when an endpoint is set', () => {
  const otelModules = () => Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@opentelemetry'));
  const logger = pino({ level: 'silent' });

  it('without OTEL_EXPORTER_OTLP_ENDPOINT no @opentelemetry module is loaded; with it, it is', async () => {
    assert.equal(await startTracing({}, logger), PROPAGATION_ONLY);
    assert.deepEqual(otelModules(), []);
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, logger);
    assert.equal(tracing.recording, true);
    assert.equal(activeTracing(), tracing);
    assert.ok(otelModules().length > 0);
    await stopTracing(1_000);
    assert.equal(activeTracing(), PROPAGATION_ONLY);
  });
});
