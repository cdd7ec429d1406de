'use strict';
// A C2D message queued before the device connects is delivered with its
// properties once the device listens for messages; complete() acks it.
const { env, run, deviceClient, waitFor, assert } = require('./lib');

run('c2d', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  await client.open();
  const got = waitFor(client, 'message');
  client.on('message', () => {});
  const [msg] = await got;
  assert.strictEqual(msg.data.toString(), 'hello device');
  assert.strictEqual(msg.messageId, 'c2d-1');
  assert.strictEqual(msg.correlationId, 'corr-1');
  assert.strictEqual(msg.contentType, 'text/plain');
  assert.strictEqual(msg.properties.getValue('color'), 'blue & green');
  await client.complete(msg);
  // A second message sent through hubsim's REST endpoint while connected.
  const next = waitFor(client, 'message', (m) => m.data.toString() === 'live');
  const { hubsimRequest } = require('./lib');
  const res = await hubsimRequest('POST', '/edgegw/devices/' + encodeURIComponent(env('DEVICE_ID')) + '/messages', 'live',
    { 'iothub-app-k': 'v' });
  assert.strictEqual(res.status, 202, res.body);
  const [live] = await next;
  assert.strictEqual(live.properties.getValue('k'), 'v');
  await client.complete(live);
  await client.close();
});
