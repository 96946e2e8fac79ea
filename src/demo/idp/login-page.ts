/**
 * HTML pages of the demo OpenID Provider. Every page is self-contained: inline
 * CSS, system fonts, no scripts, no images and no URL to any other host, so the
 * demo works on a machine with no internet access (oidc-provider's built-in
 * pages import web fonts from fonts.googleapis.com; none of them is used).
 */

const STYLE = `
:root{color-scheme:light dark}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;padding:40px 16px;background:#f3f4f6;color:#111827}
main{max-width:360px;margin:0 auto;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.2);padding:24px 28px}
h1{font-size:1.4em;font-weight:600;margin:0 0 4px}
p.sub{color:#6b7280;margin:0 0 20px;font-size:.9em}
label{display:block;font-size:.9em;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;height:40px;padding:0 10px;font-size:1em;border:1px solid #d1d5db;border-radius:6px;background:#fff;color:#111827}
button{width:100%;height:40px;margin-top:20px;border:0;border-radius:6px;background:#2563eb;color:#fff;font-size:1em;font-weight:600;cursor:pointer}
button.secondary{background:#e5e7eb;color:#111827;margin-top:10px}
.error{background:#fef2f2;color:#991b1b;border:1px solid #fecaca;border-radius:6px;padding:8px 10px;font-size:.9em}
.hint{margin-top:20px;font-size:.8em;color:#6b7280;border-top:1px solid #e5e7eb;padding-top:12px}
pre{white-space:pre-wrap;word-break:break-word;font-size:.85em;margin:4px 0}
.badge{display:inline-block;font-size:.7em;font-weight:700;letter-spacing:.05em;background:#fde68a;color:#78350f;border-radius:4px;padding:2px 6px;margin-bottom:10px}
`;

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<span class="badge">DEMO IDENTITY PROVIDER</span>
${body}
</main>
</body>
</html>
`;
}

export interface LoginPageOptions {
  /** Where the form posts (a path on the IdP itself). */
  action: string;
  /** Shown as "to continue to ...". */
  clientName: string;
  /** Re-filled after a failed attempt; never the password. */
  username?: string;
  error?: string;
  /** Free text under the form (the demo lists its users there). */
  hint?: string;
}

/** The sign-in form: fields `username` and `password` (ids and names), one submit button. */
export function loginPage(o: LoginPageOptions): string {
  return layout(
    'Sign in',
    `<h1>Sign in</h1>
<p class="sub">to continue to ${escapeHtml(o.clientName)}</p>
${o.error ? `<p class="error" id="error" role="alert">${escapeHtml(o.error)}</p>` : ''}
<form method="post" action="${escapeHtml(o.action)}" autocomplete="off">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${escapeHtml(o.username ?? '')}" required autofocus autocapitalize="off" spellcheck="false">
<label for="password">Password</label>
<input type="password" id="password" name="password" required>
<button type="submit" id="submit">Sign in</button>
</form>
${o.hint ? `<div class="hint">${escapeHtml(o.hint).replace(/\n/g, '<br>')}</div>` : ''}`,
  );
}

/**
 * RP-initiated logout confirmation (OpenID Connect RP-Initiated Logout 1.0 §2).
 * `form` is oidc-provider's hidden form (id `op.logoutForm`, carrying the xsrf
 * token); the buttons submit it.
 */
export function logoutPage(form: string, host: string): string {
  return layout(
    'Sign out',
    `<h1>Sign out</h1>
<p class="sub">Do you want to sign out from ${escapeHtml(host)}?</p>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout" id="logout-yes" autofocus>Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary" id="logout-no">No, stay signed in</button>`,
  );
}

export function postLogoutPage(clientName?: string): string {
  return layout(
    'Signed out',
    `<h1>Signed out</h1>
<p class="sub">Your sign-out${clientName ? ` from ${escapeHtml(clientName)}` : ''} was successful.</p>`,
  );
}

/** oidc-provider's `renderError` output (`error`, `error_description`, ...), never a stack. */
export function errorPage(out: Record<string, unknown>): string {
  const rows = Object.entries(out)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<pre><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</pre>`)
    .join('\n');
  return layout('Something went wrong', `<h1>Something went wrong</h1>\n${rows}`);
}
