import type { DeclarativeConfig } from './declarative.schema.js';

/** One applied configuration: what the proxy listener routes with right now. */
export interface AppliedConfig {
  /** The document as stored (Kong's format, with ids), what `GET /config` exports. */
  readonly document: unknown;
  /** The validated form the route table was compiled from. */
  readonly declarative: DeclarativeConfig;
  /** Kong's `configuration_hash`: a hex digest of the document, stable across processes. */
  readonly hash: string;
  /** Increases by one with every swap in this process. */
  readonly version: number;
  readonly appliedAt: Date;
  /** Where it came from: a path, `admin`, `postgres://…`. */
  readonly source: string;
}

/**
 * The live configuration of one gateway process. `apply` validates a whole
 * document (schema, then every route's plugin chain compiled), and only when
 * all of it is valid swaps the route table in one reference assignment;
 * requests already matched finish on the route they matched. A failure throws
 * ConfigError listing every problem and leaves the running config untouched.
 */
export abstract class ConfigRuntime {
  abstract get current(): AppliedConfig;
  abstract validate(document: unknown, source: string): Promise<DeclarativeConfig>;
  abstract apply(document: unknown, origin: { source: string; actor: string }): Promise<AppliedConfig>;
  /** Called after every successful swap (metrics, readiness, the admin API's caches). */
  abstract onApplied(listener: (config: AppliedConfig) => void): void;
  /** Called with every rejected document (readiness details show the last one). */
  abstract onRejected(listener: (err: Error, origin: { source: string; actor: string }) => void): void;
}
