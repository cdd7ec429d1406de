'use strict';
// twin.js for a device behind a gateway: the reported patch is answered by
// the gateway at once and reaches the hub a moment later, so the service
// side polls for it instead of expecting it on the next call.
const { env, run, deviceClient, waitFor, sleep, assert } = require('./lib');
const { Registry } = require('azure-iothub');

run('relay-twin', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  await client.open();
  const twin = await client.getTwin();
  assert.strictEqual(twin.properties.desired.interval, 5, 'desired set by the test before start');
  await new Promise((resolve, reject) => twin.properties.reported.update({ fw: '1.0', nested: { a: 1 } }, (e) => e ? reject(e) : resolve()));
  await new Promise((resolve, reject) => twin.properties.reported.update({ nested: { a: null, b: 2 } }, (e) => e ? reject(e) : resolve()));

  const desired = waitFor(twin, 'properties.desired', (p) => p.mode === 'eco');
  const registry = Registry.fromConnectionString(env('SERVICE_CS'));
  let serviceTwin;
  for (let i = 0; i < 100; i++) {
    ({ responseBody: serviceTwin } = await registry.getTwin(env('DEVICE_ID')));
    if (serviceTwin.properties.reported.nested && serviceTwin.properties.reported.nested.b === 2) break;
    await sleep(100);
  }
  assert.strictEqual(serviceTwin.properties.reported.fw, '1.0');
  assert.deepStrictEqual(serviceTwin.properties.reported.nested, { b: 2 });
  await serviceTwin.update({ properties: { desired: { mode: 'eco' } }, tags: { site: 'plant-1' } });
  const [patch] = await desired;
  assert.ok(patch.$version >= 3, 'desired $version ' + patch.$version);
  // A GET without a reconnect sees everything.
  const again = await client.getTwin();
  assert.strictEqual(again.properties.desired.mode, 'eco');
  assert.strictEqual(again.properties.reported.fw, '1.0');
  await client.close();
});
