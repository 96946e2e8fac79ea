import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
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
});
