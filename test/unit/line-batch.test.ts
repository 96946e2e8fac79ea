import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { AccessLog } from '../../src/common/access-log.js';
import { LineBatch, LOG_FLUSH_INTERVAL_MS } from '../../src/common/logger.js';
import { RequestContext } from '../../src/common/request-context.js';

/**
 * The process logger's batched writer: lines in order (access lines built
 * later still keep their place among the others), everything written at end,
 * a quiet logger still written by the timer, a stalled reader waited for
 * without blocking the event loop.
 */

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-line-batch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fileBatch(name: string) {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  const batch = new LineBatch(fd);
  const logger = pino({ level: 'info', base: { name: 'gatehouse' }, timestamp: false }, batch as unknown as pino.DestinationStream);
  return {
    batch,
    logger,
    read: () => readFileSync(path, 'utf8'),
    close: async () => {
      await batch.end();
      closeSync(fd);
    },
  };
}

function exchange(path: string) {
  const ctx = new RequestContext(`id-${path}`, false);
  ctx.path = path;
  const req = { method: 'GET', url: path, socket: { remoteAddress: '127.0.0.1' }, gatehouse: ctx } as unknown as IncomingMessage;
  const res = { statusCode: 200, writableFinished: true, req } as unknown as ServerResponse;
  return { req, res, ctx };
}

describe('LineBatch: the process logger’s writer', () => {
  it('keeps access lines in their place among other lines, and end() writes them all', async () => {
    const { logger, read, close } = fileBatch('order.log');
    const access = new AccessLog(logger);
    for (let i = 0; i < 1000; i++) {
      const { req, res, ctx } = exchange(`/r/${i}`);
      access.record(req, res, ctx);
      if (i % 100 === 99) logger.warn({ after: i }, 'marker');
    }
    await close();
    const lines = read().trimEnd().split('\n').map((l) => JSON.parse(l) as { msg: string; path?: string; after?: number });
    assert.equal(lines.length, 1010);
    let next = 0;
    for (const line of lines) {
      if (line.msg === 'request') assert.equal(line.path, `/r/${next++}`);
      else assert.equal(line.after, next - 1, 'a marker follows the access line logged before it');
    }
    assert.equal(next, 1000);
  });

  it('a quiet logger’s lines are written by the timer, not held back', async () => {
    const { logger, read, close } = fileBatch('quiet.log');
    const access = new AccessLog(logger);
    const { req, res, ctx } = exchange('/quiet');
    access.record(req, res, ctx);
    assert.equal(read(), '', 'held for the next batch');
    await new Promise((r) => setTimeout(r, LOG_FLUSH_INTERVAL_MS * 3));
    assert.match(read(), /"path":"\/quiet"/);
    await close();
  });

  it('flush(cb) calls back once everything gathered is written, lines added behind a write in flight included', async () => {
    const { batch, logger, read, close } = fileBatch('flush.log');
    // 70,000 characters: past one batch, so a write is in flight when the next lines arrive.
    for (let i = 0; i < 700; i++) logger.info({ n: i, pad: 'x'.repeat(80) }, 'first');
    for (let i = 0; i < 5; i++) logger.info({ n: i }, 'behind');
    const calls: string[] = [];
    await new Promise<void>((resolve) => {
      batch.flush(() => {
        calls.push('flushed');
        resolve();
      });
      calls.push('returned');
    });
    assert.deepEqual(calls, ['returned', 'flushed'], 'waits for the write in flight');
    const lines = read().trimEnd().split('\n');
    assert.equal(lines.length, 705);
    assert.match(lines[704], /"msg":"behind"/);
    let sync = false;
    batch.flush(() => (sync = true));
    assert.ok(sync, 'nothing left to write: called back at once');
    await close();
  });

  it('a reader that stops reading is waited for without blocking, and nothing is lost', async () => {
    // A child process that holds the pipe's read end, reads nothing for a while, then reads everything.
    const reader = spawn(process.execPath, ['-e', 'setTimeout(() => { let n = 0; process.stdin.on("data", (c) => { n += c.length; }); process.stdin.on("end", () => process.stdout.write(String(n))); }, 700)'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const batch = new LineBatch(fd);
    const line = `${'x'.repeat(199)}\n`;
    const started = performance.now();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    // 4 MiB: far more than a pipe holds (64 KiB), written while the reader sleeps.
    for (let i = 0; i < 20_000; i++) batch.append(line);
    assert.ok(performance.now() - started < 500, 'appending did not wait for the reader');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(ticks >= 8, `the event loop kept running while the pipe was full (${ticks} ticks)`);
    await batch.end();
    clearInterval(ticker);
    reader.stdin!.destroy();
    let out = '';
    reader.stdout!.on('data', (c: Buffer) => (out += c));
    await new Promise((r) => reader.once('exit', r));
    assert.equal(Number(out), 20_000 * line.length);
  });
  it('multi-byte lines across many buffers and a line longer than a buffer come out whole and in order', async () => {
    const { batch, read, close } = fileBatch('utf8.log');
    const expected: string[] = [];
    for (let i = 0; i < 3000; i++) {
      // Mixed widths: 1, 2, 3 and 4 bytes per character in UTF-8 (the emoji is a surrogate pair).
      const line = `${i} ${'aé€'.repeat(i % 40)}${i % 7 === 0 ? '🔑' : ''}\n`;
      expected.push(line);
      batch.append(line);
      if (i === 1500) {
        const long = `${'ü'.repeat(100_000)}\n`;
        expected.push(long);
        batch.append(long);
      }
    }
    await close();
    assert.equal(read(), expected.join(''));
  });

  it('a reader gone for long: lines past the limit are dropped, counted and reported once it reads again', async () => {
    const out = join(dir, 'stalled.out');
    const reader = spawn(process.execPath, ['-e', `setTimeout(() => process.stdin.pipe(require('fs').createWriteStream(${JSON.stringify(out)})), 1500)`], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const batch = new LineBatch(fd);
    const line = `${'y'.repeat(1023)}\n`;
    // 72 MiB while the reader sleeps: more than the 64 MiB held.
    const total = 72 * 1024;
    for (let i = 0; i < total; i++) batch.append(line);
    await batch.end();
    reader.stdin!.destroy();
    await new Promise((r) => reader.once('exit', r));
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    const notice = JSON.parse(lines.at(-1)!) as { level: string; dropped_lines: number; msg: string };
    assert.equal(notice.level, 'warn');
    assert.match(notice.msg, /dropped/);
    const kept = lines.length - 1;
    assert.ok(kept >= 64 * 1024, `at least 64 MiB kept (${kept} lines)`);
    assert.ok(notice.dropped_lines > 0);
    assert.equal(kept + notice.dropped_lines, total, 'every line written or counted');
    assert.ok(lines.slice(0, -1).every((l) => l === line.trimEnd()));
  });

  it('a process that exits without closing its logs still writes what it holds', async () => {
    const out = join(dir, 'exit.log');
    const loggerModule = fileURLToPath(new URL('../../src/common/logger.js', import.meta.url));
    const script = `import(${JSON.stringify(loggerModule)}).then(({ createLogger }) => {
      const logger = createLogger('info');
      // ≈ 36 KB: less than one write's worth, so all of it is still held at exit.
      for (let i = 0; i < 300; i++) logger.info({ n: i, pad: 'z'.repeat(60) }, 'before exit');
      process.exit(0);
    })`;
    const fd = openSync(out, 'w');
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', fd, 'inherit'] });
    closeSync(fd);
    assert.equal(await new Promise((r) => child.once('exit', r)), 0);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { n: number });
    assert.deepEqual(lines.map((l) => l.n), Array.from({ length: 300 }, (_, i) => i));
  });

  it('an idle logger does not wake the process: its timer runs only while lines wait', async () => {
    // The main thread's context switches over 1.5 s of idling after a line was written: a flush timer
    // running every LOG_FLUSH_INTERVAL_MS would switch at least 7 times (Linux /proc).
    const out = join(dir, 'idle.log');
    const loggerModule = fileURLToPath(new URL('../../src/common/logger.js', import.meta.url));
    const script = `import(${JSON.stringify(loggerModule)}).then(({ createLogger }) => {
      const { readFileSync } = require('node:fs');
      const switches = () => { const s = readFileSync('/proc/thread-self/status', 'utf8'); return Number(/^voluntary_ctxt_switches:\\s+(\\d+)/m.exec(s)[1]) + Number(/^nonvoluntary_ctxt_switches:\\s+(\\d+)/m.exec(s)[1]); };
      const logger = createLogger('info');
      logger.info('before idling');
      setTimeout(() => {
        const before = switches();
        // One ref'd timer keeps the process alive; it wakes the thread once, at the end.
        setTimeout(() => {
          process.stderr.write(String(switches() - before));
          logger.info('after idling');
          // The timer re-arms for a new line: written within the interval, not only at exit.
          setTimeout(() => process.stderr.write(readFileSync(${JSON.stringify(out)}, 'utf8').includes('after idling') ? ',written' : ',held'), ${LOG_FLUSH_INTERVAL_MS * 3});
        }, 1500);
      }, ${LOG_FLUSH_INTERVAL_MS * 3});
    })`;
    const fd = openSync(out, 'w');
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', fd, 'pipe'] });
    closeSync(fd);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    assert.equal(await new Promise((r) => child.once('exit', r)), 0);
    const [switched, afterIdle] = stderr.split(',');
    assert.match(switched, /^\d+$/, stderr);
    assert.ok(Number(switched) < 5, `the idle main thread switched ${switched} times in 1.5 s`);
    assert.equal(afterIdle, 'written');
    assert.deepEqual(readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg), ['before idling', 'after idling']);
  });
});
