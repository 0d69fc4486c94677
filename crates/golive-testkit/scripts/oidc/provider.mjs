// The OpenID Connect provider golive's tests sign in with: the certified
// `oidc-provider` package, listening on 127.0.0.1 at a port of its own
// choosing, printed as the first line ("ready http://127.0.0.1:PORT").
//
// Its settings come as one JSON argument:
//   accounts  { "id": { email, email_verified, name, groups } }
//   clients   [ oidc-provider client metadata ]
//   skew      seconds added to the provider's clock (negative: behind)
//   idTokenTtl  seconds an ID token lasts (default 3600)
// Logins use the package's development screens: any password, the
// account's id as the login. Nothing is kept on disk.
import http from 'node:http';
import Provider from 'oidc-provider';

const settings = JSON.parse(process.argv[2] || '{}');
if (settings.skew) {
  const real = Date.now;
  Date.now = () => real() + settings.skew * 1000;
}
const accounts = settings.accounts || {};

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: settings.clients || [],
    async findAccount(ctx, id) {
      const a = accounts[id];
      if (!a) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...a }; } };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    pkce: { required: () => true },
    // the claims asked for ride in the ID token too, as with most providers
    conformIdTokenClaims: false,
    ttl: { IdToken: settings.idTokenTtl || 3600 },
    cookies: { keys: ['golive-tests-only'] },
    // golive listens on 127.0.0.1 in the tests: the back-channel logout
    // must reach it, past the package's guard against loopback addresses
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('backchannel.error', (ctx, err) => console.error('backchannel.error', err.message, err.cause));
  provider.on('backchannel.success', (client) => console.error('backchannel.success', client.clientId));
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
  // the rest goes to the log: nobody reads standard output after this line
  console.log = console.error;
  console.info = console.error;
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
