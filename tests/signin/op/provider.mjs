// A real OpenID Provider (the `oidc-provider` package) for the sign-in tests.
//
// Usage: node provider.mjs CONFIG.json
// CONFIG: {"clients": [...], "jwks": {"keys": [private JWKs]}, "accounts": "accounts.json"}
// It listens on 127.0.0.1 on a free port and prints "READY <issuer>" once it serves.
// Any login is accepted on its sign-in form (development interactions); the account's claims
// (email, groups) are read from the accounts file at every sign-in, so a test can change a
// person's groups between two sign-ins. Consent is implied for every client.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function accountClaims(accountId) {
  const accounts = JSON.parse(readFileSync(config.accounts, 'utf8'));
  const person = accounts[accountId] || {};
  return {
    sub: accountId,
    email: person.email || `${accountId}@example.test`,
    email_verified: true,
    name: person.name || accountId,
    groups: person.groups || [],
  };
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: config.jwks,
    cookies: { keys: ['test-cookie-key-not-secret'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      return { accountId: id, async claims() { return accountClaims(id); } };
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      await grant.save();
      return grant;
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
