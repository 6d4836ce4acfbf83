// Real OpenFeature clients against a Switchback OFREP listener, driven by
// caddymodule's TestOFREPWithOpenFeatureClients. Prints JSON on stdout.
//
//   node clients.mjs server BASE_URL SUBJECTS FLAG...
//     The server SDK with the OFREP provider evaluates every FLAG for
//     subjects user-0 .. user-(SUBJECTS-1); prints one JSON object.
//   node clients.mjs web BASE_URL SUBJECT FLAG
//     The web SDK with the OFREP web provider evaluates FLAG for SUBJECT,
//     prints {"ready": ...} once its event stream is open, then
//     {"changed": ...} with the time (ms since the epoch) it saw FLAG's
//     value change, and exits.
//
// OFREP_TOKEN, when set, is sent as Authorization: Bearer.
import { EventSource } from 'eventsource';

const [mode, baseUrl, ...rest] = process.argv.slice(2);
const token = process.env.OFREP_TOKEN;
const headers = token ? [['Authorization', `Bearer ${token}`]] : [];

// print resolves once the line is handed to the OS: stdout to a pipe is
// asynchronous, and process.exit would cut it short.
function print(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + '\n', resolve));
}

async function server(count, flags) {
  const { OpenFeature } = await import('@openfeature/server-sdk');
  const { OFREPProvider } = await import('@openfeature/ofrep-provider');
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl, headers }));
  const client = OpenFeature.getClient();
  const subjects = new Array(count);
  let next = 0;
  const started = performance.now();
  // A few evaluations in flight at once, as a busy service would have.
  async function worker() {
    while (next < count) {
      const i = next++;
      const targetingKey = `user-${i}`;
      const answers = [];
      for (const flag of flags) {
        const d = await client.getBooleanDetails(flag, false, { targetingKey });
        answers.push({
          value: d.value,
          reason: d.reason,
          variant: d.variant ?? null,
          version: d.flagMetadata?.version ?? null,
          error: d.errorCode ?? null,
        });
      }
      subjects[i] = { key: targetingKey, answers };
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker));
  const seconds = (performance.now() - started) / 1000;
  // The error cases, through the same SDK.
  const missing = await client.getBooleanDetails(flags[0], false, {});
  const unknown = await client.getBooleanDetails('no-such-flag', false, { targetingKey: 'user-0' });
  await print({
    flags,
    subjects,
    evaluations: count * flags.length,
    seconds,
    missingKey: { value: missing.value, reason: missing.reason, error: missing.errorCode ?? null },
    unknownFlag: { value: unknown.value, reason: unknown.reason, error: unknown.errorCode ?? null },
  });
  await OpenFeature.close();
}

async function web(subject, flag) {
  let opened;
  const streamOpen = new Promise((resolve) => (opened = resolve));
  // Node 20 has no EventSource; the provider uses the global one. The
  // subclass only reports when the stream is open.
  globalThis.EventSource = class extends EventSource {
    constructor(url, init) {
      super(url, init);
      this.addEventListener('open', () => opened(url));
    }
  };
  const { OpenFeature, ProviderEvents } = await import('@openfeature/web-sdk');
  const { OFREPWebProvider } = await import('@openfeature/ofrep-web-provider');
  await OpenFeature.setContext({ targetingKey: subject });
  await OpenFeature.setProviderAndWait(
    new OFREPWebProvider({ baseUrl, headers, cacheMode: 'disabled', pollInterval: 0 }),
  );
  const client = OpenFeature.getClient();
  const before = client.getBooleanDetails(flag, false);
  const changed = new Promise((resolve) => {
    client.addHandler(ProviderEvents.ConfigurationChanged, () => {
      const now = client.getBooleanDetails(flag, false);
      if (now.value !== before.value) {
        resolve({ at: Date.now(), value: now.value, reason: now.reason, version: now.flagMetadata?.version ?? null });
      }
    });
  });
  const url = await streamOpen;
  await print({ ready: true, stream: new URL(url).pathname, value: before.value, reason: before.reason, version: before.flagMetadata?.version ?? null });
  await print({ changed: await changed });
  await OpenFeature.close();
}

try {
  if (mode === 'server') {
    const [count, ...flags] = rest;
    await server(Number(count), flags);
  } else if (mode === 'web') {
    const [subject, flag] = rest;
    await web(subject, flag);
  } else {
    throw new Error(`mode ${mode}: want server or web`);
  }
  process.exit(0);
} catch (err) {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
}
