// The browser scenarios of the end-to-end suite (run by run.sh, which starts the components and
// passes their addresses in the environment). Each check prints ok/FAILED; the last line is
// "N passed, N failed"; the exit code is non-zero if any failed.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { chromium } from 'playwright-core';

const { PROXY_URL, A_URL, R1_URL, R2_URL, MASTER_KEY, DATABASE_URL, SHOTS } = process.env;
const results = [];
const TIMEOUT = 20_000;

async function check(name, body) {
  const started = Date.now();
  try {
    await body();
    results.push([name, true]);
    console.log(`ok      ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    results.push([name, false]);
    console.log(`FAILED  ${name}\n        ${String(error?.stack || error).split('\n').join('\n        ')}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function sql(query) {
  return execFileSync('psql', [DATABASE_URL, '-qAtc', query], { encoding: 'utf8' }).trim();
}

/** A plain HTTP request from a chosen local address (the browser cannot choose one). */
function request(url, { method = 'GET', headers = {}, body, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, localAddress, timeout: 10_000 }, (res) => {
      let data = '';
      res.on('data', (chunk) => { data += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

/** A fresh browser profile that only reaches loopback (the IdP's page imports a web font). */
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === 'localhost' || host === '127.0.0.1') return route.continue();
    return route.abort();
  });
  context.setDefaultTimeout(TIMEOUT);
  return context;
}

/** Fills oidc-provider's login form. */
async function logInAtProvider(page, login) {
  await page.waitForSelector('input[name="login"]');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any password');
  await page.click('button[type="submit"]');
}

async function tokenOf(context, origin) {
  const cookies = await context.cookies(origin);
  const token = cookies.find((cookie) => cookie.name === 'token');
  assert(token, `no token cookie for ${origin}: ${JSON.stringify(cookies.map((c) => c.name))}`);
  return token.value;
}

// --- A: behind the OAuth proxy ---------------------------------------------------------------

const admin = { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' };
const team = await request(`${A_URL}/team/new`, { method: 'POST', headers: admin, body: JSON.stringify({ team_id: 'staff', team_alias: 'Staff' }) });
assert(team.status === 200, `creating team staff: ${team.status} ${team.body}`);

await check('A1 a real login through Apache mod_auth_openidc lands signed in with the plugin\'s values', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${PROXY_URL}/sso/key/generate`);
  assert(page.url().startsWith(process.env.IDP_URL), `expected the IdP's login page, got ${page.url()}`);
  await logInAtProvider(page, 'alice');
  await page.waitForURL(`${PROXY_URL}/ui/?login=success`);
  const text = await page.textContent('main');
  assert((await page.textContent('#user-id')).trim() === 'alice', `profile: ${text}`);
  assert((await page.textContent('#user-role')).includes('proxy_admin'), `role: ${text}`);
  assert((await page.textContent('#user-teams')).includes('staff'), `teams: ${text}`);
  await page.screenshot({ path: `${SHOTS}/signed-in.png`, fullPage: true });
  await page.click('a[href="/ui/users"]');
  await page.waitForURL(`${PROXY_URL}/ui/users`);
  assert((await page.textContent('table')).includes('alice@example.test'), 'the users page lists alice');
  await page.screenshot({ path: `${SHOTS}/admin-users.png`, fullPage: true });
  const row = sql("SELECT user_id || '|' || user_role || '|' || coalesce(sso_user_id, '') FROM users WHERE user_id = 'alice'");
  assert(row === 'alice|proxy_admin|alice', `PostgreSQL row: ${row}`);
  const membership = sql("SELECT team_id FROM team_members WHERE user_id = 'alice'");
  assert(membership === 'staff', `membership: ${membership}`);
  await context.close();
});

await check('A2 forged identity headers sent straight to hookgate from outside trusted_proxy_ranges are refused', async () => {
  const before = sql('SELECT count(*) FROM users');
  const forged = await request(`${A_URL}/sso/key/generate`, {
    localAddress: '127.0.0.2',
    headers: { 'x-forwarded-user': 'mallory', 'x-forwarded-email': 'mallory@example.test', 'x-forwarded-groups': 'admins', 'x-forwarded-for': '127.0.0.1' },
  });
  assert(forged.status === 403, `status ${forged.status}: ${forged.body}`);
  assert(JSON.parse(forged.body).error.message.includes('127.0.0.2 is not in general_settings.trusted_proxy_ranges'), forged.body);
  assert(!forged.headers['set-cookie'], 'no session');
  assert(sql('SELECT count(*) FROM users') === before, 'no user row');
  const event = sql("SELECT outcome || '|' || peer_addr FROM sign_in_events ORDER BY id DESC LIMIT 1");
  assert(event === 'refused|127.0.0.2', `event: ${event}`);
});

await check('A3 identity headers a browser adds itself are not honoured through Apache: bob stays an internal_user', async () => {
  // What Apache must strip: arriving at hookgate, the hook refuses a look-alike outright.
  const direct = await request(`${A_URL}/sso/key/generate`, {
    headers: { 'x-forwarded-user': 'bob', 'x-forwarded-email': 'bob@example.test', x_forwarded_groups: 'admins' },
  });
  assert(direct.status === 403, `a look-alike straight to hookgate: ${direct.status} ${direct.body}`);
  assert(JSON.parse(direct.body).error.message.includes('`x_forwarded_groups`'), direct.body);

  const forged = {
    'X-Forwarded-Groups': 'admins',
    X_Forwarded_Groups: 'admins',
    'X-Forwarded_Groups': 'admins',
    'X-Forwarded-User': 'alice',
    X_Forwarded_User: 'alice',
    'X-Forwarded-Email': 'alice@example.test',
    X_Forwarded_Preferred_Username: 'alice',
    OIDC_CLAIM_groups: 'admins',
    'X-Email': 'alice@example.test',
  };
  const context = await newContext();
  try {
    await context.setExtraHTTPHeaders(forged);
    const page = await context.newPage();
    const sent = [];
    page.on('request', (req) => {
      if (req.url().startsWith(`${PROXY_URL}/sso/key/generate`)) sent.push(req.headers());
    });
    await page.goto(`${PROXY_URL}/sso/key/generate`);
    assert(page.url().startsWith(process.env.IDP_URL), `expected the IdP's login page, got ${page.url()}`);
    await logInAtProvider(page, 'bob');
    await page.waitForURL(`${PROXY_URL}/ui/?login=success`);
    assert(sent.some((headers) => headers.x_forwarded_groups === 'admins' && headers['x-forwarded-groups'] === 'admins'),
      `the browser sent the forged headers: ${JSON.stringify(sent)}`);
    const text = await page.textContent('main');
    assert((await page.textContent('#user-id')).trim() === 'bob', `profile: ${text}`);
    const role = (await page.textContent('#user-role')).trim();
    assert(role.includes('internal_user') && !role.includes('proxy_admin'), `role: ${text}`);
    assert(!(await page.textContent('#user-teams')).includes('admins'), `teams: ${text}`);
    const row = sql("SELECT user_id || '|' || user_role || '|' || coalesce(user_email, '') FROM users WHERE user_id = 'bob'");
    assert(row === 'bob|internal_user|bob@example.test', `PostgreSQL row: ${row}`);
  } finally {
    await context.close();
    // B1 signs bob up again through hookgate as the relying party: an account bound to the
    // proxy's identity would be refused there.
    const deleted = await request(`${A_URL}/user/delete`, { method: 'POST', headers: admin, body: JSON.stringify({ user_ids: ['bob'] }) });
    assert(deleted.status === 200, `deleting bob: ${deleted.status} ${deleted.body}`);
  }
});

// --- B: hookgate as the relying party -------------------------------------------------------

let bobCallback;
let bobFlowCookie;
await check('B1 hookgate as the OIDC relying party: a real login form, then signed in', async () => {
  const context = await newContext();
  const page = await context.newPage();
  // Redirects are not routed by Playwright, but every request of the chain is reported.
  page.on('request', (req) => {
    if (req.url().startsWith(`${R1_URL}/sso/callback`)) bobCallback = req.url();
  });
  await page.goto(`${R1_URL}/sso/key/generate`);
  assert(page.url().startsWith(process.env.IDP_URL), `expected the IdP, got ${page.url()}`);
  bobFlowCookie = (await context.cookies(R1_URL)).find((cookie) => cookie.name === 'hookgate_oidc_flow');
  await logInAtProvider(page, 'bob');
  await page.waitForURL(`${R1_URL}/ui/?login=success`);
  assert((await page.textContent('#user-id')).trim() === 'bob', 'bob is signed in');
  assert((await page.textContent('#user-role')).includes('internal_user'), 'the plugin made bob an internal_user');
  assert((await page.textContent('#user-budget')).includes('0.01 USD'), 'with the plugin\'s budget');
  assert(bobCallback && bobFlowCookie, 'the callback was seen');

  // B3: the same callback again, even with the old flow cookie put back, is refused.
  await context.addCookies([bobFlowCookie]);
  const replay = await page.goto(bobCallback);
  assert(replay.status() === 400, `replay status ${replay.status()}`);
  assert((await page.textContent('body')).includes('already completed'), await page.textContent('body'));

  // B4: logging out in the UI kills the session key.
  const key = jwtClaims(await tokenOf(context, R1_URL)).key;
  assert((await request(`${R1_URL}/user/info`, { headers: { authorization: `Bearer ${key}` } })).status === 200, 'the key works');
  await page.goto(`${R1_URL}/ui/`);
  await page.click('text=Log out');
  await page.waitForURL(`${R1_URL}/ui/login`);
  const after = await request(`${R1_URL}/user/info`, { headers: { authorization: `Bearer ${key}` } });
  assert(after.status === 401, `after logout: ${after.status} ${after.body}`);
  await context.close();
});

await check('B2 aborting at the provider gives a clear page', async () => {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${R1_URL}/sso/key/generate`);
  await page.waitForSelector('a[href*="/abort"]');
  const [response] = await Promise.all([
    page.waitForResponse((res) => res.url().startsWith(`${R1_URL}/sso/callback`)),
    page.click('a[href*="/abort"]'),
  ]);
  assert(response.status() === 401, `status ${response.status()}`);
  const body = await page.textContent('body');
  assert(body.includes('access_denied') && body.includes('End-User aborted interaction'), body);
  assert(body.includes('Sign in again'), 'a way back');
  await context.close();
});

// --- C: two replicas ---------------------------------------------------------------------------

await check('C1 a login begun on replica 1 completes on replica 2; its session works on both; logout on one counts on both', async () => {
  // alice's account from A1 is bound to the OAuth proxy's identity; by design (SECURITY.md,
  // account binding) an OIDC sign-in cannot take it over, so she starts afresh here.
  const admin = { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' };
  const deleted = await request(`${R1_URL}/user/delete`, { method: 'POST', headers: admin, body: JSON.stringify({ user_ids: ['alice'] }) });
  assert(deleted.status === 200, `deleting alice: ${deleted.status} ${deleted.body}`);
  const context = await newContext();
  const page = await context.newPage();
  // The provider sends the browser back to replica 1's callback; deliver it to replica 2 instead,
  // as a load balancer might. Playwright does not route redirects, so the login form's POST is
  // routed: its redirect chain (to the provider's resume endpoint, then to the callback) is
  // followed here by hand, and the browser is sent to replica 2's callback.
  const interaction = (url) => url.origin === process.env.IDP_URL && url.pathname.startsWith('/interaction/');
  await page.route(interaction, async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    let response = await route.fetch({ maxRedirects: 0 });
    let location = response.headers().location;
    for (let hop = 0; hop < 5 && location && !location.startsWith(`${R1_URL}/sso/callback`); hop += 1) {
      response = await context.request.get(new URL(location, process.env.IDP_URL).href, { maxRedirects: 0 });
      location = response.headers().location;
    }
    assert(location?.startsWith(`${R1_URL}/sso/callback`), `the provider did not redirect to replica 1: ${location}`);
    await route.fulfill({ status: 303, headers: { location: location.replace(R1_URL, R2_URL) } });
  });
  await page.goto(`${R1_URL}/sso/key/generate`);
  await logInAtProvider(page, 'alice');
  await page.waitForURL(`${R2_URL}/ui/?login=success`);
  assert((await page.textContent('#user-id')).trim() === 'alice', 'signed in on replica 2');
  const key = jwtClaims(await tokenOf(context, R2_URL)).key;
  const onReplica1 = await page.goto(`${R1_URL}/ui/`);
  assert(onReplica1.status() === 200 && (await page.textContent('#user-id')).trim() === 'alice', 'replica 1 accepts the session');
  const out = await request(`${R1_URL}/session/logout`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
  assert(out.status === 200, `logout on replica 1: ${out.status}`);
  const onReplica2 = await request(`${R2_URL}/user/info`, { headers: { authorization: `Bearer ${key}` } });
  assert(onReplica2.status === 401, `replica 2 after logout on replica 1: ${onReplica2.status}`);
  await context.close();
});

// --- D: the front door: hookgate signs people into LiteLLM's real proxy ---------------------
// run.sh sets FD_URL etc. only when LiteLLM runs (unless HOOKGATE_E2E_SKIP_LITELLM=1).

const { FD_URL, FD_OIDC_URL, F_URL, G_URL, LITELLM_URL, LITELLM_SH, FD_DATABASE_URL } = process.env;

function fdSql(query) {
  return execFileSync('psql', [FD_DATABASE_URL, '-qAtc', query], { encoding: 'utf8' }).trim();
}

/** Checks the `token` cookie hookgate set on the public host and returns its claims. */
async function frontDoorToken(context, origin) {
  const cookie = (await context.cookies(origin)).find((c) => c.name === 'token');
  assert(cookie, `no token cookie on ${origin}`);
  assert(cookie.path === '/' && !cookie.httpOnly, `the UI must read it: path ${cookie.path}, httpOnly ${cookie.httpOnly}`);
  // HS256 signed with the master key, as LiteLLM signs its own.
  const [header, payload, signature] = cookie.value.split('.');
  const expected = createHmac('sha256', MASTER_KEY).update(`${header}.${payload}`).digest('base64url');
  assert(signature === expected, 'the token cookie is not HS256-signed with the master key');
  const claims = jwtClaims(cookie.value);
  assert(claims.key?.startsWith('sk-'), `key claim: ${claims.key}`);
  return claims;
}

/** Signs `login` in at the provider through the OIDC front door (G) in a fresh browser, and
 * returns the token cookie's claims. */
async function frontDoorSignIn(login) {
  const context = await newContext();
  const page = await context.newPage();
  await page.goto(`${FD_OIDC_URL}/sso/key/generate`);
  await logInAtProvider(page, login);
  await page.waitForURL(`${FD_OIDC_URL}/ui/?login=success`);
  const claims = await frontDoorToken(context, FD_OIDC_URL);
  await context.close();
  return claims;
}

/** A sign-in of `login` through the OIDC front door that hookgate refuses: the callback's status,
 * the page's text, and whether a token cookie was set (a screenshot to `shot` if given). */
async function frontDoorRefusal(login, shot) {
  const context = await newContext();
  const page = await context.newPage();
  let callback;
  page.on('response', (res) => {
    if (res.url().startsWith(`${FD_OIDC_URL}/sso/callback`)) callback = res;
  });
  await page.goto(`${FD_OIDC_URL}/sso/key/generate`);
  await logInAtProvider(page, login);
  await page.waitForURL((url) => url.pathname === '/sso/callback');
  await page.waitForLoadState('load');
  const body = await page.textContent('body');
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  const tokenCookie = (await context.cookies(FD_OIDC_URL)).some((c) => c.name === 'token');
  await context.close();
  return { status: callback?.status(), body, tokenCookie };
}

/** On LiteLLM's dashboard, signed in: the page settled on /ui/ (not /ui/login) and shows each text
 * (LiteLLM's UI renders the user's email and role label at the foot of its side bar). */
async function onLiteLLMDashboard(page, origin, texts, shot) {
  await page.waitForURL(`${origin}/ui/?login=success`);
  await page.waitForLoadState('networkidle').catch(() => {});
  for (const text of texts) await page.getByText(text, { exact: true }).first().waitFor({ state: 'visible' });
  const url = new URL(page.url());
  assert(url.origin === origin && url.pathname.startsWith('/ui') && !url.pathname.startsWith('/ui/login'), `left the dashboard: ${page.url()}`);
  await page.screenshot({ path: `${SHOTS}/${shot}`, fullPage: true });
}

async function chat(base, key) {
  return request(`${base}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-gpt', messages: [{ role: 'user', content: 'hi' }] }),
  });
}

async function litellmUser(userId) {
  const res = await request(`${LITELLM_URL}/user/info?user_id=${encodeURIComponent(userId)}`, { headers: admin });
  assert(res.status === 200, `LiteLLM /user/info ${userId}: ${res.status} ${res.body}`);
  return JSON.parse(res.body).user_info;
}

if (!FD_URL) {
  console.log('skipped D1-D6 (the front door against the real LiteLLM): HOOKGATE_E2E_SKIP_LITELLM=1');
} else {
  let bobKey;
  await check('D1 header hook: a login through Apache mod_auth_openidc lands on LiteLLM\'s own dashboard, signed in', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${FD_URL}/sso/key/generate`);
    assert(page.url().startsWith(process.env.IDP_URL), `expected the IdP's login page, got ${page.url()}`);
    await logInAtProvider(page, 'bob');
    // The hook's budget shows on the home page's spend card ("of $0.01 budget").
    await onLiteLLMDashboard(page, FD_URL, ['bob@example.test', 'Internal User', 'of $0.01 budget'], 'front-door-header.png');
    const claims = await frontDoorToken(context, FD_URL);
    assert(claims.user_id === 'bob' && claims.user_role === 'internal_user', `claims: ${JSON.stringify(claims)}`);
    bobKey = claims.key;
    // The UI itself used the key: LiteLLM served it the user's own data.
    const info = await request(`${FD_URL}/user/info`, { headers: { authorization: `Bearer ${bobKey}` } });
    assert(info.status === 200, `LiteLLM /user/info with the session key: ${info.status} ${info.body}`);
    await context.close();
  });

  await check('D2 that key answers 200 on LiteLLM POST /chat/completions (through the public host)', async () => {
    assert(bobKey, 'D1 gave no key');
    const res = await chat(FD_URL, bobKey);
    assert(res.status === 200, `${res.status} ${res.body}`);
    assert(JSON.parse(res.body).choices[0].message.content === 'hello from mock-gpt', res.body);
  });

  await check('D3 the user\'s role and budget in LiteLLM are the custom_sso hook\'s', async () => {
    const user = await litellmUser('bob');
    // example-plugins/custom_sso: not in `admins` → internal_user with 0.01 USD a day.
    assert(user.user_role === 'internal_user', `role: ${JSON.stringify(user)}`);
    assert(user.max_budget === 0.01 && user.budget_duration === '1d', `budget: ${JSON.stringify(user)}`);
    // LiteLLM's sso_user_id carries hookgate's binding: the proxy's issuer and bob's subject.
    assert(user.user_email === 'bob@example.test' && user.sso_user_id === 'hookgate:oauth-proxy#bob', `identity: ${JSON.stringify(user)}`);
    const row = fdSql("SELECT user_role || '|' || max_budget FROM users WHERE user_id = 'bob'");
    assert(row === 'internal_user|0.01', `hookgate's row: ${row}`);
  });

  await check('D4 logout through hookgate (Bearer session key) deletes the key in LiteLLM: 401 on /chat/completions', async () => {
    assert(bobKey, 'D1 gave no key');
    const out = await request(`${F_URL}/session/logout`, { method: 'POST', headers: { authorization: `Bearer ${bobKey}` } });
    assert(out.status === 200, `logout: ${out.status} ${out.body}`);
    const after = await chat(FD_URL, bobKey);
    assert(after.status === 401, `LiteLLM after logout: ${after.status} ${after.body}`);
    const inHookgate = await request(`${F_URL}/user/info`, { headers: { authorization: `Bearer ${bobKey}` } });
    assert(inHookgate.status === 401, `hookgate after logout: ${inHookgate.status}`);
  });

  await check('D5 OIDC: hookgate as the relying party behind the public host lands on LiteLLM\'s dashboard too', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${FD_OIDC_URL}/sso/key/generate`);
    assert(page.url().startsWith(process.env.IDP_URL), `expected the IdP, got ${page.url()}`);
    await logInAtProvider(page, 'alice');
    await onLiteLLMDashboard(page, FD_OIDC_URL, ['alice@example.test', 'Admin', 'No budget set'], 'front-door-oidc.png');
    const claims = await frontDoorToken(context, FD_OIDC_URL);
    assert(claims.user_id === 'alice' && claims.user_role === 'proxy_admin', `claims: ${JSON.stringify(claims)}`);
    const res = await chat(FD_OIDC_URL, claims.key);
    assert(res.status === 200, `chat: ${res.status} ${res.body}`);
    const user = await litellmUser('alice');
    assert(user.user_role === 'proxy_admin' && user.max_budget === null, `alice in LiteLLM: ${JSON.stringify(user)}`);
    const out = await request(`${G_URL}/session/logout`, { method: 'POST', headers: { authorization: `Bearer ${claims.key}` } });
    assert(out.status === 200, `logout: ${out.status} ${out.body}`);
    assert((await chat(FD_OIDC_URL, claims.key)).status === 401, 'the key is gone after logout');
    await context.close();
  });

  await check('D7 an unverified email and a foreign-bound id get no LiteLLM key, and LiteLLM\'s own users stay as they were', async () => {
    // LiteLLM's own users, made through its API: an invited admin bound to no sign-in identity,
    // and an admin bound to LiteLLM's own single sign-on.
    for (const body of [
      { user_id: 'u-cfo-1234', user_email: 'CFO@example.test', user_role: 'proxy_admin', max_budget: 100, auto_create_key: false },
      { user_id: 'litellm-admin', user_email: 'it-admin@example.test', user_role: 'proxy_admin', sso_user_id: 'litellm-own-sso-xyz', auto_create_key: false },
    ]) {
      const res = await request(`${LITELLM_URL}/user/new`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
      assert(res.status === 200, `seeding ${body.user_id}: ${res.status} ${res.body}`);
    }
    const shape = (u) => JSON.stringify([u.user_role, u.user_email, u.sso_user_id, u.max_budget, u.budget_duration, u.metadata]);
    const before = { cfo: shape(await litellmUser('u-cfo-1234')), admin: shape(await litellmUser('litellm-admin')) };
    const keysBefore = fdSql('SELECT count(*) FROM sessions');

    // The unverified CFO email: mallory signs in as herself, and nothing of the CFO's is touched.
    const claims = await frontDoorSignIn('mallory');
    assert(claims.user_id === 'mallory', `claims: ${JSON.stringify(claims)}`);
    const mallory = await litellmUser('mallory');
    assert(mallory.user_email === null, `an unverified email was written to LiteLLM: ${JSON.stringify(mallory)}`);

    // The chosen preferred_username: refused with a page that names no one, no cookie.
    const refused = await frontDoorRefusal('intruder', `${SHOTS}/front-door-not-linked.png`);
    assert(refused.status === 403, `status ${refused.status}`);
    assert(refused.body.includes('not linked to your sign-in') && !refused.body.includes('litellm-admin'), `page: ${refused.body}`);
    assert(!refused.tokenCookie, 'a token cookie was set');

    const after = { cfo: shape(await litellmUser('u-cfo-1234')), admin: shape(await litellmUser('litellm-admin')) };
    assert(after.cfo === before.cfo, `the CFO changed: ${before.cfo} -> ${after.cfo}`);
    assert(after.admin === before.admin, `LiteLLM's admin changed: ${before.admin} -> ${after.admin}`);
    // Only mallory's session was opened (hookgate records every key it had LiteLLM mint).
    assert(Number(fdSql('SELECT count(*) FROM sessions')) === Number(keysBefore) + 1, 'one new session');
    assert(fdSql("SELECT count(*) FROM users WHERE user_id IN ('u-cfo-1234', 'litellm-admin')") === '0', 'hookgate wrote a victim');
    const event = fdSql("SELECT outcome || '|' || coalesce(reason, '') FROM sign_in_events ORDER BY id DESC LIMIT 1");
    assert(event.startsWith('refused|litellm: ') && event.includes('bound to another sign-in identity'), `event: ${event}`);
  });

  await check('D8 a LiteLLM-side logout ends the hookgate session; a demotion shows in LiteLLM at once; after a deletion LiteLLM refuses the key', async () => {
    const signInAlice = async () => (await frontDoorSignIn('alice')).key;
    // Logged out in LiteLLM (its own /session/logout, which its UI calls): hookgate refuses the key too.
    let key = await signInAlice();
    const bearer = { authorization: `Bearer ${key}` };
    const out = await request(`${FD_OIDC_URL}/session/logout`, { method: 'POST', headers: bearer });
    assert(out.status === 200, `LiteLLM's logout: ${out.status} ${out.body}`);
    const stale = await request(`${G_URL}/user/info`, { headers: bearer });
    assert(stale.status === 401 && stale.body.includes('signed out in the LiteLLM proxy'), `hookgate after LiteLLM's logout: ${stale.status} ${stale.body}`);

    key = await signInAlice();
    assert((await litellmUser('alice')).user_role === 'proxy_admin', 'alice starts as an admin');
    const demote = await request(`${G_URL}/user/update`, { method: 'POST', headers: admin, body: JSON.stringify({ user_id: 'alice', user_role: 'internal_user_viewer' }) });
    assert(demote.status === 200, `demote: ${demote.status} ${demote.body}`);
    const demoted = await litellmUser('alice');
    assert(demoted.user_role === 'internal_user_viewer', `LiteLLM's alice right after the demotion: ${JSON.stringify(demoted)}`);

    assert((await chat(FD_OIDC_URL, key)).status === 200, 'the key works before the deletion');
    const del = await request(`${G_URL}/user/delete`, { method: 'POST', headers: admin, body: JSON.stringify({ user_ids: ['alice'] }) });
    assert(del.status === 200, `delete: ${del.status} ${del.body}`);
    const after = await chat(FD_OIDC_URL, key);
    assert(after.status === 401, `LiteLLM after the deletion: ${after.status} ${after.body}`);
    const revoke = await request(`${G_URL}/session/revoke`, { method: 'POST', headers: admin, body: JSON.stringify({ user_id: 'alice' }) });
    assert(revoke.status === 200, `revoke after delete: ${revoke.status} ${revoke.body}`);
  });

  await check('D9 sync_user_role_and_teams: a group taken away in the provider takes the team away in hookgate and in LiteLLM, and the earlier key stops working', async () => {
    const { E2E_GROUPS_FILE } = process.env;
    const { writeFileSync } = await import('node:fs');
    // The teams exist on both sides: LiteLLM's own (its API), hookgate's (its API on G).
    for (const team_id of ['e2e-staff', 'e2e-research']) {
      let res = await request(`${LITELLM_URL}/team/new`, { method: 'POST', headers: admin, body: JSON.stringify({ team_id, team_alias: team_id }) });
      assert(res.status === 200, `LiteLLM /team/new ${team_id}: ${res.status} ${res.body}`);
      res = await request(`${G_URL}/team/new`, { method: 'POST', headers: admin, body: JSON.stringify({ team_id }) });
      assert(res.status === 200, `hookgate /team/new ${team_id}: ${res.status} ${res.body}`);
    }
    const litellmMembers = async (team_id) => {
      const res = await request(`${LITELLM_URL}/team/info?team_id=${team_id}`, { headers: admin });
      assert(res.status === 200, `LiteLLM /team/info ${team_id}: ${res.status} ${res.body}`);
      return JSON.parse(res.body).team_info.members_with_roles.map((m) => m.user_id).filter((id) => id === 'dana');
    };
    const signInDana = async (groups) => {
      writeFileSync(E2E_GROUPS_FILE, JSON.stringify({ dana: groups }));
      return (await frontDoorSignIn('dana')).key;
    };
    const hookgateTeams = () => fdSql("SELECT string_agg(team_id || ':' || source, ',' ORDER BY team_id) FROM team_members WHERE user_id = 'dana'");

    const first = await signInDana(['e2e-staff', 'e2e-research', 'e2e-auto-lab', 'not-a-team']);
    assert(hookgateTeams() === 'e2e-auto-lab:idp,e2e-research:idp,e2e-staff:idp', `hookgate after the first sign-in: ${hookgateTeams()}`);
    // e2e-auto-lab was made from the group (create_teams_from_groups), in LiteLLM first, with
    // default_team_params; not-a-team matches no prefix and was not.
    const lab = await request(`${LITELLM_URL}/team/info?team_id=e2e-auto-lab`, { headers: admin });
    assert(lab.status === 200, `LiteLLM's e2e-auto-lab: ${lab.status} ${lab.body}`);
    const labInfo = JSON.parse(lab.body).team_info;
    assert(labInfo.max_budget === 7, `LiteLLM's e2e-auto-lab budget: ${JSON.stringify(labInfo)}`);
    assert((await litellmMembers('e2e-auto-lab')).length === 1, 'dana is in LiteLLM\'s e2e-auto-lab');
    assert(fdSql("SELECT count(*) FROM teams WHERE team_id = 'not-a-team'") === '0', 'a group outside the prefixes became a team');
    assert((await litellmMembers('e2e-research')).length === 1, 'dana is in LiteLLM\'s e2e-research');
    assert((await chat(FD_OIDC_URL, first)).status === 200, 'the first key works');

    // An administrator puts dana in a third team by hand: the sync must leave that one alone.
    const third = await request(`${G_URL}/team/new`, { method: 'POST', headers: admin, body: JSON.stringify({ team_id: 'e2e-admins-pick' }) });
    assert(third.status === 200, `hookgate /team/new e2e-admins-pick: ${third.status} ${third.body}`);
    const add = await request(`${G_URL}/team/member_add`, { method: 'POST', headers: admin, body: JSON.stringify({ team_id: 'e2e-admins-pick', member: [{ user_id: 'dana', role: 'user' }] }) });
    assert(add.status === 200, `member_add by an administrator: ${add.status} ${add.body}`);

    // The provider takes e2e-research away.
    const second = await signInDana(['e2e-staff']);
    assert(hookgateTeams() === 'e2e-admins-pick:admin,e2e-staff:idp', `hookgate after the group went: ${hookgateTeams()}`);
    assert((await litellmMembers('e2e-auto-lab')).length === 0, 'dana left LiteLLM\'s e2e-auto-lab');
    assert((await litellmMembers('e2e-research')).length === 0, 'dana left LiteLLM\'s e2e-research');
    assert((await litellmMembers('e2e-staff')).length === 1, 'dana stays in LiteLLM\'s e2e-staff');
    const stale = await chat(FD_OIDC_URL, first);
    assert(stale.status === 401, `the key issued with the lost team, in LiteLLM: ${stale.status} ${stale.body}`);
    assert((await chat(FD_OIDC_URL, second)).status === 200, 'the new key works');
  });

  await check('D10 SCIM: the identity provider deactivates a user; their very next request, to LiteLLM or hookgate, is refused, and they leave the LiteLLM team', async () => {
    const { SCIM_TOKEN } = process.env;
    const scim = { authorization: `Bearer ${SCIM_TOKEN}`, 'content-type': 'application/scim+json' };
    const { key } = await frontDoorSignIn('erin');
    assert((await chat(FD_OIDC_URL, key)).status === 200, 'erin\'s key works');
    const staff = async () => {
      const res = await request(`${LITELLM_URL}/team/info?team_id=e2e-staff`, { headers: admin });
      return JSON.parse(res.body).team_info.members_with_roles.some((m) => m.user_id === 'erin');
    };
    assert(await staff(), 'erin is in LiteLLM\'s e2e-staff');

    // What Entra sends to deactivate (its capitalised op, the string "False").
    const found = await request(`${G_URL}/scim/v2/Users?filter=${encodeURIComponent('userName eq "erin"')}`, { headers: scim });
    assert(found.status === 200, `SCIM list: ${found.status} ${found.body}`);
    const [resource] = JSON.parse(found.body).Resources;
    assert(resource?.id, `SCIM found no erin: ${found.body}`);
    const patch = await request(`${G_URL}/scim/v2/Users/${encodeURIComponent(resource.id)}`, {
      method: 'PATCH',
      headers: scim,
      body: JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] }),
    });
    assert(patch.status === 200, `SCIM deactivation: ${patch.status} ${patch.body}`);
    assert(JSON.parse(patch.body).active === false, `SCIM says: ${patch.body}`);

    const inLitellm = await chat(FD_OIDC_URL, key);
    assert(inLitellm.status === 401, `LiteLLM right after the deactivation: ${inLitellm.status} ${inLitellm.body}`);
    const inHookgate = await request(`${G_URL}/user/info`, { headers: { authorization: `Bearer ${key}` } });
    assert(inHookgate.status === 401, `hookgate right after the deactivation: ${inHookgate.status} ${inHookgate.body}`);
    assert(!(await staff()), 'erin left LiteLLM\'s e2e-staff');

    // Signing in again is refused.
    const again = await frontDoorRefusal('erin');
    assert(again.status === 403, `a deactivated user's sign-in: ${again.status}`);
    assert(!again.tokenCookie, 'a token cookie was set');
  });

  await check('D6 LiteLLM down: a sign-in answers 502 naming LiteLLM, sets no token cookie, opens no session', async () => {
    execFileSync('bash', [LITELLM_SH, 'stop'], { stdio: 'ignore' });
    const down = await request(`${LITELLM_URL}/health/liveliness`).then((r) => r.status, () => 'refused');
    assert(down === 'refused', `LiteLLM still answers: ${down}`);
    const sessionsBefore = fdSql('SELECT count(*) FROM sessions');
    const context = await newContext();
    const page = await context.newPage();
    let signIn;
    page.on('response', (res) => {
      if (res.url().startsWith(`${FD_URL}/sso/key/generate`)) signIn = res;
    });
    await page.goto(`${FD_URL}/sso/key/generate`);
    await logInAtProvider(page, 'bob');
    await page.waitForURL(`${FD_URL}/sso/key/generate`);
    await page.waitForLoadState('load');
    assert(signIn?.status() === 502, `status ${signIn?.status()}`);
    const body = await page.textContent('body');
    assert(body.includes('LiteLLM'), `the page does not name LiteLLM: ${body}`);
    await page.screenshot({ path: `${SHOTS}/front-door-litellm-down.png`, fullPage: true });
    const cookies = await context.cookies(FD_URL);
    assert(!cookies.some((c) => c.name === 'token'), `cookies: ${cookies.map((c) => c.name)}`);
    assert(fdSql('SELECT count(*) FROM sessions') === sessionsBefore, 'a session was recorded');
    const event = fdSql("SELECT outcome || '|' || coalesce(user_id, '') FROM sign_in_events ORDER BY id DESC LIMIT 1");
    console.log(`        last sign-in event: ${event}`);
    assert(!event.startsWith('allowed'), `event: ${event}`);
    await context.close();
  });
}

await browser.close();
const passed = results.filter(([, ok]) => ok).length;
const failed = results.length - passed;
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
