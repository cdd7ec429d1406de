'use strict';
// Telemetry with system and application properties; hubsim_test checks
// what the hub decoded.
const { env, run, deviceClient, Message, assert } = require('./lib');

run('telemetry', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  await client.open();
  const m = new Message(JSON.stringify({ temperature: 21.5 }));
  m.messageId = 'mid-1';
  m.correlationId = 'cid 1';
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('alert', 'yes&no=maybe/so');
  m.properties.add('unit', '°C');
  const r = await client.sendEvent(m);
  assert.ok(r, 'sendEvent result');
  await client.sendEvent(new Message('b1'));
  await client.sendEvent(new Message('b2'));
  await client.close();
});
