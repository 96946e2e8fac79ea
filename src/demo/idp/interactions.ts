import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DemoIdpSettings } from './configuration.js';
import { readBody, redirect, send } from './http.js';
import { errorPage, loginPage } from './login-page.js';
import type { OidcProvider } from './oidc-provider.js';

/** `/interaction/<uid>`, `/interaction/<uid>/login`, `/interaction/<uid>/abort`. */
const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/;

/** The interaction uid and action of an interaction URL path, or undefined for any other path. */
export function matchInteraction(path: string): { uid: string; action: string | undefined } | undefined {
  const m = INTERACTION_PATH.exec(path);
  return m ? { uid: m[1], action: m[2] } : undefined;
}

/**
 * The login and consent interactions (as oidc-provider's example
 * `routes/express.js`): a login form checked against the demo users, and
 * consent that approves itself within what the user may be granted.
 */
export async function handleInteraction(
  current: OidcProvider,
  settings: DemoIdpSettings,
  req: IncomingMessage,
  res: ServerResponse,
  uid: string,
  action: string | undefined,
): Promise<void> {
  const { accounts, log } = settings;
  let details: any;
  try {
    details = await current.interactionDetails(req, res);
  } catch (err) {
    log?.debug({ err: (err as Error).message }, 'demo idp: interaction not found');
    return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'this sign-in attempt expired or was not found; start again from the application' }));
  }
  if (details.uid !== uid) {
    return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'interaction mismatch; start again from the application' }));
  }
  const client = await current.Client.find(details.params.client_id);
  const clientName: string = client?.clientName ?? details.params.client_id;

  if (action === '/abort') {
    return current.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
  }

  if (action === '/login') {
    if (req.method !== 'POST') return send(res, 405, errorPage({ error: 'invalid_request', error_description: 'use the sign-in form' }), { allow: 'POST' });
    if (details.prompt.name !== 'login') return redirect(res, `/interaction/${uid}`);
    const form = new URLSearchParams(await readBody(req, 16 * 1024));
    const username = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    const user = accounts.authenticate(username, password);
    if (!user) {
      log?.debug({ username }, 'demo idp: wrong username or password');
      return send(res, 200, loginPage({ action: `/interaction/${uid}/login`, clientName, username, error: 'Invalid username or password.', hint: settings.loginHint }));
    }
    return current.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }

  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, errorPage({ error: 'invalid_request' }), { allow: 'GET' });
  switch (details.prompt.name) {
    case 'login':
      return send(res, 200, loginPage({ action: `/interaction/${uid}/login`, clientName, hint: settings.loginHint, username: details.params.login_hint }));
    case 'consent': {
      // Consent is auto-approved, limited to what the user may have: a scope the
      // user is not granted is recorded as rejected, so it is simply absent from
      // the tokens (the gateway, not the IdP, answers 403).
      const user = accounts.findBySub(details.session?.accountId);
      if (!user) return send(res, 400, errorPage({ error: 'invalid_request', error_description: 'unknown account' }));
      const allowed = accounts.grantedScopes(user);
      const grant = details.grantId
        ? await current.Grant.find(details.grantId)
        : new current.Grant({ accountId: user.sub, clientId: details.params.client_id });
      const d = details.prompt.details ?? {};
      if (d.missingOIDCScope) {
        const [ok, no] = partition(d.missingOIDCScope as string[], (s) => allowed.has(s));
        if (ok.length) grant.addOIDCScope(ok.join(' '));
        if (no.length) grant.rejectOIDCScope(no.join(' '));
      }
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries((d.missingResourceScopes ?? {}) as Record<string, string[]>)) {
        const [ok, no] = partition(scopes, (s) => allowed.has(s));
        if (ok.length) grant.addResourceScope(indicator, ok.join(' '));
        if (no.length) grant.rejectResourceScope(indicator, no.join(' '));
      }
      const grantId = await grant.save();
      return current.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    default:
      return send(res, 501, errorPage({ error: 'invalid_request', error_description: `prompt ${details.prompt.name} is not supported by the demo IdP` }));
  }
}

function partition<T>(items: T[], pred: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const i of items) (pred(i) ? yes : no).push(i);
  return [yes, no];
}
