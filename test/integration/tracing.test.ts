import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FakeIssuer } from '../helpers/fake-issuer.js';
import { bearerPlugin, httpRequest, startGateway, type GatewayProcess } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/**
 * Traces as an operator gets them: the built gateway started with the standard
 * OTEL_* variables exports over OTLP/HTTP (JSON encoding) to a collector on a
 * local port, and the spans, their parent/child links and the `traceparent`
 * the upstream received are read back from the real export requests.
 */

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status?: { code?: number };
  resource: Record<string, unknown>;
}

const SERVER = 2;
const CLIENT = 3;

function attributes(list: { key: string; value: Record<string, unknown> }[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

/** A minimal OTLP/HTTP collector: POST /v1/traces with JSON bodies, every span kept. */
async function startCollector() {
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        const resource = attributes(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ ...s, attributes: attributes(s.attributes), resource });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const waitFor = async (pred: (s: OtlpSpan) => boolean, what: string, timeoutMs = 10_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = spans.find(pred);
      if (found) return found;
      if (Date.now() > until) throw new Error(`no span ${what}; got ${spans.map((s) => s.name).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, paths, waitFor, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('tracing: OpenTelemetry spans over OTLP/HTTP', () => {
  let issuer: FakeIssuer;
  let upstream: Upstream;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let gw: GatewayProcess;

  before(async () => {
    issuer = await FakeIssuer.start();
    upstream = await startUpstream();
    collector = await startCollector();
    gw = await startGateway({
      config: {
        _format_version: '3.0',
        services: [
          {
            name: 'orders',
            url: upstream.url,
            routes: [
              { name: 'open', paths: ['/open'] },
              { name: 'scoped', paths: ['/scoped'], plugins: [bearerPlugin(issuer.issuer, { scopes_required: ['orders:read'] })] },
              {
                name: 'introspected',
                paths: ['/introspected'],
                plugins: [{ name: 'openid-connect', config: { issuer: issuer.issuer, auth_methods: ['introspection'], client_id: ['gatehouse'], client_secret: ['secret'] } }],
              },
            ],
          },
        ],
      },
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
        GATEHOUSE_TRACE_CALLER: 'true',
      },
    });
  });
  after(async () => {
    await gw?.stop();
    await collector?.close();
    await upstream?.close();
    await issuer?.stop();
  });

  it('a bearer request: server span, upstream child span, and the upstream got the upstream span as parent', async () => {
    const token = await issuer.token({ sub: 'alice', scope: 'orders:read' });
    const res = await httpRequest(gw.proxyUrl, '/scoped/items?access_token=leak', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, res.text());
    const requestId = res.headers['x-request-id'];
    const sent = upstream.requests.at(-1)!.headers;
    assert.equal(sent['x-request-id'], requestId, 'X-Request-Id stays');
    const tp = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(sent.traceparent));
    assert.ok(tp, `traceparent upstream: ${sent.traceparent}`);

    const server = await collector.waitFor((s) => s.kind === SERVER && s.attributes['gatehouse.request_id'] === requestId, 'for the bearer request');
    assert.equal(server.name, 'GET scoped');
    assert.equal(server.traceId, tp[1]);
    assert.equal(server.parentSpanId || undefined, undefined, 'no incoming traceparent: a root span');
    assert.equal(server.attributes['gatehouse.route'], 'scoped');
    assert.equal(server.attributes['gatehouse.service'], 'orders');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['url.path'], '/scoped/items');
    assert.equal(server.attributes['enduser.id'], 'alice', 'GATEHOUSE_TRACE_CALLER=true');
    assert.equal(server.resource['service.name'], 'gatehouse');
    assert.equal(server.resource['deployment.environment'], 'test');

    const exchange = await collector.waitFor((s) => s.kind === CLIENT && s.parentSpanId === server.spanId && s.attributes['gatehouse.service'] === 'orders', 'upstream exchange');
    assert.equal(exchange.traceId, server.traceId);
    assert.equal(exchange.spanId, tp[2], "the upstream's parent is the exchange span");
    assert.equal(exchange.attributes['http.response.status_code'], 200);
    assert.equal(exchange.attributes['url.full'], `${upstream.url}/items`, 'strip_path: the path the upstream was asked for');

    // The key set was fetched once discovery completed, at start-up: its own trace.
    const jwks = await collector.waitFor((s) => s.attributes['gatehouse.idp.endpoint'] === 'jwks', 'JWKS');
    assert.equal(jwks.kind, CLIENT);
    const discovery = await collector.waitFor((s) => s.attributes['gatehouse.idp.endpoint'] === 'discovery', 'discovery at start-up');
    assert.equal(discovery.parentSpanId || undefined, undefined, 'start-up discovery is a trace of its own');

    for (const s of collector.spans) assert.ok(!JSON.stringify(s).includes('leak') && !JSON.stringify(s).includes(token), `no query or token in ${s.name}`);
    assert.ok(collector.paths.every((p) => p.startsWith('POST /v1/traces application/json')), collector.paths.join('\n'));
  });

  it('an IdP call made for a request is a child span of it (introspection)', async () => {
    const res = await httpRequest(gw.proxyUrl, '/introspected', { headers: { authorization: 'Bearer opaque-token-value' } });
    assert.equal(res.status, 401, res.text());
    const requestId = res.headers['x-request-id'];
    const server = await collector.waitFor((s) => s.kind === SERVER && s.attributes['gatehouse.request_id'] === requestId, 'for the introspected request');
    const call = await collector.waitFor((s) => s.attributes['gatehouse.idp.endpoint'] === 'introspection', 'introspection');
    assert.equal(call.name, 'POST introspection');
    assert.equal(call.kind, CLIENT);
    assert.equal(call.traceId, server.traceId);
    assert.equal(call.parentSpanId, server.spanId);
    assert.equal(call.attributes['http.response.status_code'], 200);
    assert.equal(call.attributes['url.full'], `${issuer.issuer}/introspect`);
    assert.ok(!JSON.stringify(call).includes('opaque-token-value'));
  });

  it("a client's traceparent: kept as parent, its tracestate passed on, its sampled flag not trusted", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await httpRequest(gw.proxyUrl, '/open/a', { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-00`, tracestate: 'rojo=00f067aa0ba902b7' } });
    assert.equal(res.status, 200);
    const sent = upstream.requests.at(-1)!.headers;
    const server = await collector.waitFor((s) => s.kind === SERVER && s.traceId === traceId, 'joined to the client trace');
    assert.equal(server.parentSpanId, '00f067aa0ba902b7');
    // Untrusted peer: its "not sampled" decided nothing; the default root sampler (always on) recorded the request.
    assert.equal(server.attributes['gatehouse.untrusted_parent'], true);
    const exchange = await collector.waitFor((s) => s.kind === CLIENT && s.parentSpanId === server.spanId, 'exchange');
    assert.equal(sent.traceparent, `00-${traceId}-${exchange.spanId}-01`);
    assert.equal(sent.tracestate, 'rojo=00f067aa0ba902b7');
  });

  it('a malformed traceparent is replaced by a new trace; errors are marked', async () => {
    const res = await httpRequest(gw.proxyUrl, '/scoped', { headers: { traceparent: '00-XYZ-00f067aa0ba902b7-01', tracestate: 'rojo=1' } });
    assert.equal(res.status, 401);
    const server = await collector.waitFor((s) => s.kind === SERVER && s.attributes['http.response.status_code'] === 401, 'the 401');
    assert.equal(server.parentSpanId || undefined, undefined);
    assert.equal(server.attributes['gatehouse.untrusted_parent'], undefined);
    assert.equal(server.status?.code ?? 0, 0, 'a 4xx is not a server error (HTTP semantic conventions)');
  });

  it('spans still buffered are exported on SIGTERM', async () => {
    const res = await httpRequest(gw.proxyUrl, '/open/last');
    const requestId = res.headers['x-request-id'];
    assert.equal(await gw.stop(), 0);
    await collector.waitFor((s) => s.attributes['gatehouse.request_id'] === requestId, 'of the last request', 2_000);
  });
});

describe('tracing off: W3C headers still reach the upstream', () => {
  let upstream: Upstream;
  let gw: GatewayProcess;
  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({ config: { _format_version: '3.0', services: [{ name: 's', url: upstream.url, routes: [{ name: 'r', paths: ['/'] }] }] } });
  });
  after(async () => {
    await gw?.stop();
    await upstream?.close();
  });

  it('new trace when absent or malformed, the client trace unchanged when valid; the access line names the trace', async () => {
    await httpRequest(gw.proxyUrl, '/a');
    const fresh = upstream.requests.at(-1)!.headers;
    assert.match(String(fresh.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.ok(fresh['x-request-id']);
    const line = await gw.waitForLog((l) => l.msg === 'request' && l.request_id === fresh['x-request-id']);
    assert.equal(line.trace_id, String(fresh.traceparent).slice(3, 35));

    await httpRequest(gw.proxyUrl, '/b', { headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', tracestate: 'a=1' } });
    assert.equal(upstream.requests.at(-1)!.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    assert.equal(upstream.requests.at(-1)!.headers.tracestate, 'a=1');

    await httpRequest(gw.proxyUrl, '/c', { headers: { traceparent: 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'a=1' } });
    const replaced = upstream.requests.at(-1)!.headers;
    assert.doesNotMatch(String(replaced.traceparent), /4bf92f3577b34da6a3ce929d0e0e4736/);
    assert.equal(replaced.tracestate, undefined);
  });
});
