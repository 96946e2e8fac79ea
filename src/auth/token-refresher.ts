import { Inject, Injectable } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import { LOGGER } from '../common/logger.js';
import { decodeClaims } from './auth-http.js';
import { IdentityProviderUnavailableError } from './auth.errors.js';
import { BoundedCache } from './bounded-cache.js';
import { idpFailed } from './openid-connect.strategy.js';
import { refreshCoordinator } from './refresh-coordinator.js';
import type { OpenIdConnectInstance } from './openid-connect.instance.js';
import { epoch, type SessionData } from './session.store.js';
import { gatewayMetrics } from '../metrics/gateway-metrics.js';

/** A refreshed session is handed to requests that still carry the old cookie (their browser has not seen the new one yet). */
const REFRESHED_REUSE_MS = 30_000;
const REFRESHED_MAX = 10_000;
/** How long one instance may hold the cross-instance refresh lock (Redis sessions). */
const REFRESH_LOCK_MS = 5_000;
const LOCK_POLL_MS = 100;

/**
 * Refreshes a session's tokens once, however many requests need it at the same
 * time: in this process the first request refreshes and the others wait for
 * it; across gateway instances sharing Redis, a lock does the same, and the
 * holder works from the session as stored *after* taking the lock (another
 * instance may have refreshed it in between: with rotating refresh tokens a
 * second grant with the spent token would be refused and end the session for
 * everyone). Requests still presenting the old cookie shortly afterwards reuse
 * the result.
 */
@Injectable()
export class TokenRefresher {
  private readonly refreshing = new Map<string, Promise<SessionData | undefined>>();
  private readonly refreshed = new BoundedCache<string, SessionData>(REFRESHED_MAX);
  /** Across the workers of this gateway (cookie sessions); Redis sessions use a Redis lock instead. */
  private readonly workers = refreshCoordinator();

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  /** The refreshed session, or undefined when it must end (the IdP refused, or the new ID token is not the same user's). */
  refresh(session: SessionData, instance: OpenIdConnectInstance, expired: boolean, req: IncomingMessage): Promise<SessionData | undefined> {
    const key = refreshKey(session);
    const done = this.refreshed.get(key);
    if (done) return Promise.resolve({ ...done });
    let pending = this.refreshing.get(key);
    if (!pending) {
      pending = this.refreshOnce(session, instance, expired, req).finally(() => this.refreshing.delete(key));
      this.refreshing.set(key, pending);
    }
    return pending.then((s) => (s ? { ...s } : undefined));
  }

  private async refreshOnce(session: SessionData, instance: OpenIdConnectInstance, expired: boolean, req: IncomingMessage): Promise<SessionData | undefined> {
    const store = instance.sessions!;
    let next: SessionData | undefined;
    if (!store.shared) {
      next = await this.workers.once(
        `${instance.id}\n${refreshKey(session)}`,
        () => this.refreshWithIdp(session, instance, expired),
        (result) => result !== session,
      );
    } else if (await store.acquireRefreshLock(session.sid, REFRESH_LOCK_MS)) {
      try {
        const current = await store.reload(req);
        if (!current) return undefined; // logged out meanwhile
        if (current.access_token !== session.access_token) {
          next = current; // another instance refreshed between our read and our lock
        } else {
          next = await this.refreshWithIdp(current, instance, expired);
          if (next && next !== current) await store.write(next, req);
        }
      } finally {
        await store.releaseRefreshLock(session.sid).catch(() => undefined);
      }
    } else {
      next = await this.awaitOtherInstance(session, req, instance, expired);
    }
    if (next && next !== session) this.refreshed.set(refreshKey(session), next, REFRESHED_REUSE_MS);
    return next;
  }

  /** Another instance holds the lock: wait for what it stores. */
  private async awaitOtherInstance(session: SessionData, req: IncomingMessage, instance: OpenIdConnectInstance, expired: boolean): Promise<SessionData | undefined> {
    for (let waited = 0; waited < REFRESH_LOCK_MS; waited += LOCK_POLL_MS) {
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      const current = await instance.sessions!.reload(req);
      if (!current) return undefined;
      if (current.access_token !== session.access_token) return current;
    }
    if (!expired) return session;
    throw new IdentityProviderUnavailableError('token refresh by another instance did not finish');
  }

  private async refreshWithIdp(session: SessionData, instance: OpenIdConnectInstance, expired: boolean): Promise<SessionData | undefined> {
    const cfg = await instance.client();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      tokens = await gatewayMetrics.idpCall(instance.issuer.issuer, 'refresh', () => client.refreshTokenGrant(cfg, session.refresh_token!));
    } catch (err) {
      if (!idpFailed(err)) {
        this.logger.info({ sub: session.sub, error: (err as { error?: string }).error ?? (err as Error).message }, 'refresh refused by the identity provider: session ended');
        return undefined;
      }
      if (!expired) return session; // still valid for a little while: try again on a later request
      throw new IdentityProviderUnavailableError('token refresh failed', err);
    }
    if (tokens.id_token) {
      const problem = refreshedIdTokenProblem(session.id_token ? decodeClaims(session.id_token) : undefined, tokens.claims() as Record<string, unknown> | undefined, session);
      if (problem) {
        this.logger.warn({ sub: session.sub, issuer: session.iss, reason: problem }, 'refreshed ID token does not match the session: session ended');
        return undefined;
      }
    }
    this.logger.info({ sub: session.sub, issuer: session.iss }, 'session tokens refreshed');
    return {
      ...session,
      access_token: tokens.access_token,
      expires_at: tokens.expires_in ? epoch() + tokens.expires_in : undefined,
      refresh_token: tokens.refresh_token ?? session.refresh_token,
      id_token: tokens.id_token ?? session.id_token,
    };
  }
}

/** One refresh per session and per token generation: a later expiry of the same session refreshes again. */
function refreshKey(s: SessionData): string {
  return `${s.sid}\n${s.expires_at ?? ''}`;
}

/**
 * OpenID Connect Core §12.2: an ID token from a refresh must name the same
 * issuer, subject, audience and authorized party as the original, and keep its
 * `auth_time` (the user did not authenticate again). Anything else is another
 * login that the session must not silently become.
 */
export function refreshedIdTokenProblem(original: Record<string, unknown> | undefined, refreshed: Record<string, unknown> | undefined, session: Pick<SessionData, 'iss' | 'sub'>): string | undefined {
  if (!refreshed) return 'the token response has an id_token that could not be validated';
  if (refreshed.iss !== session.iss) return 'iss differs';
  if (refreshed.sub !== session.sub) return 'sub differs';
  if (!original) return undefined;
  if (original.iss !== refreshed.iss) return 'iss differs';
  if (original.sub !== refreshed.sub) return 'sub differs';
  if (!sameAudience(original.aud, refreshed.aud)) return 'aud differs';
  if (original.azp !== refreshed.azp) return 'azp differs';
  if (refreshed.auth_time !== undefined && original.auth_time !== undefined && refreshed.auth_time !== original.auth_time) return 'auth_time differs';
  return undefined;
}

function sameAudience(a: unknown, b: unknown): boolean {
  const list = (v: unknown) => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String).sort();
  const x = list(a);
  const y = list(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
