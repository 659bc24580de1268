// A real OpenID provider for the end-to-end suite: panva's oidc-provider with its development
// login form (any password; the users below have fixed claims). PKCE is required for every
// client, as a strict production provider would. Consent is granted on first login.
//
// Environment: IDP_PORT, PROXY_REDIRECT_URI (mod_auth_openidc's, comma-separated: one per Apache
// host), HOOKGATE_REDIRECT_URIS (comma-separated, hookgate's /sso/callback on each replica),
// E2E_GROUPS_FILE (optional: a JSON object user → groups, read at every sign-in, so that a
// scenario can take a group away between two sign-ins).
import { existsSync, readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT);
const issuer = `http://127.0.0.1:${port}`;

const users = {
  alice: { email: 'alice@example.test', name: 'Alice Liddell', given_name: 'Alice', family_name: 'Liddell', groups: ['admins', 'staff'] },
  bob: { email: 'bob@example.test', name: 'Bob Builder', given_name: 'Bob', family_name: 'Builder', groups: ['staff'] },
  // Scenario D's attackers (security review 3, H1): one holds an UNVERIFIED copy of LiteLLM's
  // CFO's email, the other chose a preferred_username that is a LiteLLM user bound to LiteLLM's
  // own single sign-on.
  mallory: { email: 'cfo@example.test', email_verified: false, name: 'Mallory', groups: [] },
  intruder: { email: 'intruder@example.test', preferred_username: 'litellm-admin', name: 'Intruder', groups: ['admins'] },
  // Scenario D9's user, whose groups the scenario changes (E2E_GROUPS_FILE).
  dana: { email: 'dana@example.test', name: 'Dana Scully', given_name: 'Dana', family_name: 'Scully', groups: [] },
  // Scenario D10's user, deprovisioned over SCIM.
  erin: { email: 'erin@example.test', name: 'Erin Hannon', given_name: 'Erin', family_name: 'Hannon', groups: ['e2e-staff'] },
};

// The groups E2E_GROUPS_FILE gives `id` now, if it names them.
function groupsOverride(id) {
  const file = process.env.E2E_GROUPS_FILE;
  if (!file || !existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8'))[id];
}

const configuration = {
  clients: [
    {
      client_id: 'e2e-proxy',
      client_secret: 'e2e-proxy-secret',
      redirect_uris: process.env.PROXY_REDIRECT_URI.split(','),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'e2e-hookgate',
      client_secret: 'e2e-hookgate-secret',
      redirect_uris: process.env.HOOKGATE_REDIRECT_URIS.split(','),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['e2e-cookie-key-not-a-secret'] },
  async findAccount(ctx, id) {
    const user = users[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        const groups = groupsOverride(id);
        return { sub: id, preferred_username: id, email_verified: true, ...user, ...(groups ? { groups } : {}) };
      },
    };
  },
  // Grant what the client asks for on first login (no consent screen).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, error) => console.error('server_error', error));
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
