// DEVELOPMENT ONLY. A local OpenID Connect provider for bubble-manager's demo and tests.
//
// It stands in for the hospital's identity provider (Keycloak, AD FS, Pro Santé Connect): a plain
// login form, demo users per role, group membership in a `groups` claim, and a simulated second
// factor (a one-time code step) that sets `amr: ["pwd", "otp"]` and a "mfa" `acr` in the ID token.
// Users without a second factor get `amr: ["pwd"]`. Passwords and codes are in the users file in
// clear text, keys are generated at each start and everything is kept in memory: never point a
// hub holding real data at it.
//
//   node provider.mjs --config FILE
//
// The config file (JSON, written by `python -m bubble_manager.auth.devprovider`):
//   {"host": "127.0.0.1", "port": 0, "issuer": "http://127.0.0.1:PORT" (optional),
//    "client": {"client_id", "client_secret", "redirect_uris": [...], "post_logout_redirect_uris": [...]},
//    "admin_token": "...", "access_token_ttl": 300,
//    "users": [{"login", "password", "name", "email", "groups": [...], "mfa": true, "otp": "123456"}]}
//
// Besides the OIDC endpoints, a small development API (bearer admin_token) changes users while
// the provider runs, so tests can take someone out of a group or remove them altogether:
//   GET /dev/users            PUT /dev/users/:login {groups, mfa, ...}            DELETE /dev/users/:login
// Once listening it prints one JSON line: {"issuer": "...", "port": N}.

import { randomBytes, generateKeyPairSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const ACR_PASSWORD = 'urn:bubble-manager:dev:pwd';
const ACR_MFA = 'urn:bubble-manager:dev:mfa';

function argument(name) {
  const index = process.argv.indexOf(name);
  return index > 0 ? process.argv[index + 1] : undefined;
}

const configPath = argument('--config');
if (!configPath) {
  console.error('usage: node provider.mjs --config FILE (see the header of this file)');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const users = new Map(config.users.map((user) => [user.login, { ...user }]));

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function sameSecret(given, expected) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(String(expected ?? ''));
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto}label{display:block;margin:.6em 0}
input{width:100%;padding:.4em}button{margin-top:1em;padding:.5em 1.2em}.banner{background:#fde68a;padding:.5em}
.error{color:#b91c1c}</style></head><body>
<p class="banner">Development identity provider: for demos and tests only, never for real data.</p>
<h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

async function readForm(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 64 * 1024) ctx.throw(413, 'request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if ((ctx.get('content-type') || '').startsWith('application/json')) {
    return text ? JSON.parse(text) : {};
  }
  return Object.fromEntries(new URLSearchParams(text));
}

// Claims are read from the live users map at every call: a change made through /dev/users shows
// in the next userinfo response or refresh, and a removed user is unknown (tokens stop working).
async function findAccount(ctx, id) {
  const user = users.get(id);
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        preferred_username: user.login,
        name: user.name ?? user.login,
        email: user.email ?? user.login,
        email_verified: true,
        groups: user.groups ?? [],
      };
    },
  };
}

const client = {
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  ...config.client,
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') };

const provider = new Provider(config.issuer, {
  clients: [client],
  findAccount,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  acrValues: [ACR_PASSWORD, ACR_MFA],
  // The claims asked for with scopes go into the ID token too, as most hospital IdPs do.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `<p>Sign out of the development identity provider too?</p>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out of the development identity provider.</p>');
      },
    },
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: config.access_token_ttl ?? 300,
    IdToken: 3600,
    RefreshToken: 8 * 3600,
    Session: 8 * 3600,
    Grant: 8 * 3600,
    Interaction: 600,
  },
  // A first-party client: no consent screen, a refresh token for every code grant.
  async issueRefreshToken(ctx, oidcClient) {
    return oidcClient.grantTypeAllowed('refresh_token');
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid offline_access profile email groups');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p class="error">${escapeHtml(out.error)}: ${escapeHtml(out.error_description ?? '')}</p>`);
  },
});
provider.proxy = false;

const pendingSecondFactor = new Map(); // interaction uid -> login that passed the password step

function loginForm(uid, error = '') {
  return page('Sign in', `${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" id="login-form">
<label>Login <input name="login" autocomplete="username" autofocus required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>`);
}

function codeForm(uid, error = '') {
  return page('Second factor', `${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<p>Enter the one-time code from your authenticator (simulated: the demo users file holds it).</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/otp" id="otp-form">
<label>One-time code <input name="otp" inputmode="numeric" autocomplete="one-time-code" autofocus required></label>
<button type="submit">Verify</button></form>`);
}

async function finishLogin(ctx, login, amr, acr) {
  await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login, amr, acr, remember: false } },
    { mergeWithLastSubmission: false });
  ctx.respond = false;
}

function devApiAllowed(ctx) {
  const header = ctx.get('authorization') || '';
  return header.startsWith('Bearer ') && sameSecret(header.slice(7), config.admin_token);
}

provider.use(async (ctx, next) => {
  ctx.set('cache-control', 'no-store');
  const path = ctx.path;

  if (path === '/dev/users' || path.startsWith('/dev/users/')) {
    if (!devApiAllowed(ctx)) {
      ctx.status = 401;
      ctx.body = { error: 'the development API needs Authorization: Bearer <admin_token>' };
      return;
    }
    const login = decodeURIComponent(path.slice('/dev/users/'.length));
    if (ctx.method === 'GET' && path === '/dev/users') {
      ctx.body = [...users.values()].map(({ password, otp, ...rest }) => rest);
    } else if (ctx.method === 'PUT' && login) {
      const changes = await readForm(ctx);
      const current = users.get(login) ?? { login, password: randomBytes(9).toString('base64url'), mfa: false };
      users.set(login, { ...current, ...changes, login });
      const { password, otp, ...shown } = users.get(login);
      ctx.body = shown;
    } else if (ctx.method === 'DELETE' && login) {
      ctx.status = users.delete(login) ? 204 : 404;
    } else {
      ctx.status = 405;
    }
    return;
  }

  const match = path.match(/^\/interaction\/([^/]+)(?:\/(login|otp))?$/);
  if (!match) return next();
  const [, uid, step] = match;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch: start the sign-in again from the application');
  ctx.type = 'html';

  if (ctx.method === 'GET' && !step) {
    if (details.prompt.name === 'login') {
      ctx.body = pendingSecondFactor.has(uid) ? codeForm(uid) : loginForm(uid);
      return;
    }
    // Any other prompt (consent): a first-party client, so grant what was asked for.
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res, { consent: details.grantId ? {} : { grantId } },
      { mergeWithLastSubmission: true });
    ctx.respond = false;
    return;
  }

  if (ctx.method === 'POST' && step === 'login') {
    const form = await readForm(ctx);
    const user = users.get(form.login);
    if (!user || !sameSecret(form.password, user.password)) {
      ctx.status = 401;
      ctx.body = loginForm(uid, 'Unknown login or wrong password.');
      return;
    }
    if (user.mfa) {
      pendingSecondFactor.set(uid, user.login);
      ctx.body = codeForm(uid);
      return;
    }
    await finishLogin(ctx, user.login, ['pwd'], ACR_PASSWORD);
    return;
  }

  if (ctx.method === 'POST' && step === 'otp') {
    const login = pendingSecondFactor.get(uid);
    if (!login) {
      ctx.status = 400;
      ctx.body = loginForm(uid, 'Sign in with your password first.');
      return;
    }
    const form = await readForm(ctx);
    const user = users.get(login);
    if (!user || !sameSecret(form.otp, user.otp)) {
      ctx.status = 401;
      ctx.body = codeForm(uid, 'Wrong code.');
      return;
    }
    pendingSecondFactor.delete(uid);
    await finishLogin(ctx, login, ['pwd', 'otp'], ACR_MFA);
    return;
  }
  ctx.status = 405;
});

const server = createServer(provider.callback());
server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ issuer: config.issuer, port }));
});

function stop() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
