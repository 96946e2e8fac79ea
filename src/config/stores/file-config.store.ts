import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError, parseConfigText } from '../config.loader.js';
import type { ConfigStore, StoreChangeMeta } from '../config-store.js';

/**
 * Events on one file come in bursts (an editor's write-then-rename, a
 * ConfigMap's symlink swap touches three names): the file is read once the
 * directory has been quiet this long.
 */
const SETTLE_MS = 150;

/**
 * `database: off` — the declarative file is the truth, as in Kong's DB-less
 * mode. Read-only. Watched through its directory, not the file: Kubernetes
 * mounts a ConfigMap as `..data -> ..2026_…/` symlinks and updates it by
 * swapping the `..data` link, which a watch on the file itself never sees (and
 * an editor's rename-over-the-file leaves such a watch on a deleted inode).
 * `reload()` (SIGHUP) reads it at once. A file whose bytes did not change is
 * not reported, so touching it or a burst of events costs one read.
 */
export class FileConfigStore implements ConfigStore {
  readonly kind = 'off' as const;
  readonly writable = false;
  readonly source: string;
  private lastDigest?: string;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private listener?: { onChange: (document: unknown, meta: StoreChangeMeta) => void; onError: (err: Error) => void };
  private reading = Promise.resolve();

  constructor(private readonly path: string) {
    this.source = path;
  }

  async load(): Promise<Record<string, unknown>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      throw this.unreadable(err);
    }
    this.lastDigest = digest(text);
    return parseConfigText(text, this.path);
  }

  save(): Promise<void> {
    return Promise.reject(new Error('the declarative file is read-only (database: off)'));
  }

  watch(onChange: (document: unknown, meta: StoreChangeMeta) => void, onError: (err: Error) => void): void {
    this.listener = { onChange, onError };
    const file = basename(this.path);
    try {
      this.watcher = watch(dirname(resolve(this.path)), { persistent: false }, (_event, name) => {
        // `..data` is the ConfigMap's symlink swap; null names happen on some platforms.
        if (name === null || name === file || name === '..data') this.schedule('file');
      });
      this.watcher.on('error', (err) => onError(err));
    } catch (err) {
      onError(err as Error);
    }
  }

  /** Reads the file now (SIGHUP), reporting it even when its bytes did not change. */
  reload(actor = 'sighup'): Promise<void> {
    return this.check(actor, true);
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.listener = undefined;
  }

  private schedule(actor: string) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(actor, false), SETTLE_MS);
    this.timer.unref();
  }

  /** One read at a time, in order: a slow read must not deliver an older file after a newer one. */
  private check(actor: string, always: boolean): Promise<void> {
    this.reading = this.reading.then(async () => {
      const listener = this.listener;
      if (!listener) return;
      let text: string;
      try {
        text = await readFile(this.path, 'utf8');
      } catch (err) {
        // A ConfigMap update removes the old target before the link points at the new one; the next event reads it.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !always) return;
        listener.onError(this.unreadable(err));
        return;
      }
      const d = digest(text);
      if (!always && d === this.lastDigest) return;
      this.lastDigest = d;
      let document: Record<string, unknown>;
      try {
        document = parseConfigText(text, this.path);
      } catch (err) {
        listener.onError(err as ConfigError);
        return;
      }
      listener.onChange(document, { actor });
    });
    return this.reading;
  }

  private unreadable(err: unknown): ConfigError {
    return new ConfigError(this.path, [{ path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})` }]);
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
