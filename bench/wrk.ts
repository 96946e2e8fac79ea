import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from './load-spec.js';

/** wrk from Debian: low CPU per request, sub-millisecond latency (see ../shared/PERFORMANCE.md). */

export function wrkVersion(): string | undefined {
  // `wrk -v` prints its version and usage; the exit status varies between builds.
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  const first = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0];
  return r.error || !first.startsWith('wrk') ? undefined : first.split(' Copyright')[0].trim();
}

const lua = (s: string) => JSON.stringify(s); // a JSON string is a valid Lua string literal for our ASCII values

/** The Lua script: static headers/body, optional token cycling, strict status counting, JSON summary. */
export function wrkScript(spec: LoadSpec): string {
  const lines: string[] = ['threads = {}', 'function setup(thread) table.insert(threads, thread) end'];
  if (spec.method) lines.push(`wrk.method = ${lua(spec.method)}`);
  for (const [k, v] of Object.entries(spec.headers ?? {})) lines.push(`wrk.headers[${lua(k)}] = ${lua(v)}`);
  if (spec.bodyBytes) {
    lines.push(`wrk.body = string.rep("u", ${spec.bodyBytes})`, 'wrk.headers["Content-Type"] = "application/octet-stream"');
  }
  if (spec.tokensFile) {
    lines.push(
      'tokens = {}',
      `for line in io.lines(${lua(spec.tokensFile)}) do if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end end`,
      `local i = ${spec.tokenOffset ?? 0} % #tokens`,
      'local h = {}',
      'for k, v in pairs(wrk.headers) do h[k] = v end',
      'function request()',
      '  i = i + 1',
      '  if i > #tokens then i = 1 end',
      '  h["Authorization"] = tokens[i]',
      '  return wrk.format(nil, nil, h)',
      'end',
    );
  }
  if (spec.strict) {
    lines.push(
      'non2xx = 0',
      'function response(status, headers, body)',
      '  if status < 200 or status > 299 then non2xx = non2xx + 1 end',
      'end',
    );
  }
  lines.push(
    'function done(summary, latency, requests)',
    '  local bad = 0',
    '  for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end',
    '  local e = summary.errors',
    '  io.write(string.format(\'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"p50_us":%.0f,"p99_us":%.0f,"non2xx":%.0f}\\n\',',
    '    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,',
    '    latency:percentile(50), latency:percentile(99), bad))',
    'end',
  );
  return `${lines.join('\n')}\n`;
}

/** Runs wrk (pinned to `cpus` with taskset when given) and parses the JSON summary. */
export function runWrk(spec: LoadSpec, dir: string, name: string, cpus?: string): Promise<LoadResult> {
  const script = join(dir, `${name}.lua`);
  writeFileSync(script, wrkScript(spec));
  const args = ['-t', String(spec.threads ?? 1), '-c', String(spec.connections), '-d', `${spec.durationS}s`, '--latency', '--timeout', '10s', '-s', script, spec.url];
  const [cmd, argv] = cpus ? ['taskset', ['-c', cpus, 'wrk', ...args]] : ['wrk', args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (!line) return reject(new Error(`wrk exited with ${code} without a summary: ${err || out}`));
      const r = JSON.parse(line.slice('BENCH_JSON '.length));
      const durationS = r.duration_us / 1e6;
      const socketErrors = r.connect + r.read + r.write + r.timeout;
      const badStatus = spec.strict ? r.non2xx : r.status;
      resolve({
        tool: 'wrk',
        requests: r.requests,
        durationS,
        rps: r.requests / durationS,
        p50Ms: r.p50_us / 1000,
        p99Ms: r.p99_us / 1000,
        bytes: r.bytes,
        socketErrors,
        badStatus,
        firstError: socketErrors || badStatus ? `wrk: connect ${r.connect}, read ${r.read}, write ${r.write}, timeout ${r.timeout}, bad status ${badStatus}` : undefined,
      });
    });
  });
}
