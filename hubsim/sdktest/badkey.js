'use strict';
// A wrong key is refused (CONNACK 5) and the SDK reports UnauthorizedError.
const { env, run, deviceClient, assert } = require('./lib');

run('badkey', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  await assert.rejects(client.open(), (e) => {
    const text = String(e && (e.message || e)) + ' ' + (e && e.constructor && e.constructor.name);
    assert.match(text, /Not authorized|UnauthorizedError/);
    return true;
  });
});
