'use strict';
// Twin GET, reported patch, and a desired notification caused by a twin
// update through azure-iothub's Registry (REST via port-shim.js).
const { env, run, deviceClient, waitFor, assert } = require('./lib');
const { Registry } = require('azure-iothub');

run('twin', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  await client.open();
  const twin = await client.getTwin();
  assert.strictEqual(twin.properties.desired.interval, 5, 'desired set by the test before start');
  await new Promise((resolve, reject) => twin.properties.reported.update({ fw: '1.0', nested: { a: 1 } }, (e) => e ? reject(e) : resolve()));
  await new Promise((resolve, reject) => twin.properties.reported.update({ nested: { a: null, b: 2 } }, (e) => e ? reject(e) : resolve()));

  const desired = waitFor(twin, 'properties.desired', (p) => p.mode === 'eco');
  const registry = Registry.fromConnectionString(env('SERVICE_CS'));
  const { responseBody: serviceTwin } = await registry.getTwin(env('DEVICE_ID'));
  assert.strictEqual(serviceTwin.properties.reported.fw, '1.0');
  assert.deepStrictEqual(serviceTwin.properties.reported.nested, { b: 2 });
  await serviceTwin.update({ properties: { desired: { mode: 'eco' } }, tags: { site: 'plant-1' } });
  const [patch] = await desired;
  assert.ok(patch.$version >= 3, 'desired $version ' + patch.$version);
  // Reconnect-free GET sees everything.
  const again = await client.getTwin();
  assert.strictEqual(again.properties.desired.mode, 'eco');
  await client.close();
});
