import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../helpers/gateway.js';

/**
 * The benchmark suite's quick mode, as CI runs it: every case for a
 * second, wrk when installed or the built-in load generator otherwise. No
 * speed is asserted, only that each case ran and every request got a 2xx.
 */

interface CaseResult {
  id: string;
  status: string;
  reason?: string;
  samples: { requests: number; errors: number }[];
}

/** The cases that must run everywhere; nginx's are "unavailable" where nginx is not installed. */
const REQUIRED = ['1', '2', '2-rs256', '2-es256', '2-cycle', '4', '4-warn', '4-otel', '5-rs256', '5-es256', '6', '7', '8-64k-bare', '8-64k-gw', '8-up-bare', '8-up-gw', '9-gw-1w', '9-gw-2w', '10-rl-local', '10-rl-redis', '13-routes-10k'];
const NGINX = ['3', '8-64k-nginx', '8-up-nginx', '9-nginx-1w', '9-nginx-2w'];

test('npm run bench:quick: every case completes without errors', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'quick.json');
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist/bench/run.js'), '--quick', '--json', json], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b));
  child.stderr.on('data', (b: Buffer) => (output += b));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0, `bench --quick exited with ${code}:\n${output.slice(-4000)}`);

  const report = JSON.parse(readFileSync(json, 'utf8')) as {
    mode: string;
    cases: CaseResult[];
    streams: { target: string; error?: string }[];
    routeScale?: { routes: number; compileMs: number };
  };
  assert.equal(report.routeScale?.routes, 10_000, 'group 12 measured the 10,000-route table');
  assert.ok(report.routeScale.compileMs > 0);
  assert.equal(report.mode, 'quick');
  const byId = new Map(report.cases.map((c) => [c.id, c]));
  for (const id of REQUIRED) {
    const c = byId.get(id);
    assert.ok(c, `case ${id} is missing from the report`);
    assert.equal(c.status, 'ok', `case ${id}: ${c.status} ${c.reason ?? ''}`);
    assert.equal(c.samples.length, 1, `case ${id} has one sample in quick mode`);
    assert.ok(c.samples[0].requests > 0, `case ${id} sent requests`);
    assert.equal(c.samples[0].errors, 0, `case ${id} had errors`);
  }
  for (const id of NGINX) {
    const c = byId.get(id);
    assert.ok(c && ['ok', 'unavailable'].includes(c.status), `nginx case ${id}: ${c?.status} ${c?.reason ?? ''}`);
  }
  const gwStreams = report.streams.filter((s) => s.target === 'gw');
  assert.equal(gwStreams.length, 2, 'a large download and upload went through Gatehouse');
  for (const s of gwStreams) assert.equal(s.error, undefined);
});
