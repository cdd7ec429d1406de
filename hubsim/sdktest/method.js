'use strict';
// Registry CRUD and a direct method invoked through azure-iothub (REST).
const { env, run, deviceClient, sleep, assert } = require('./lib');
const { Registry, Client } = require('azure-iothub');

run('method', async () => {
  const registry = Registry.fromConnectionString(env('SERVICE_CS'));
  const id = 'node-created-' + process.pid;
  const { responseBody: created } = await registry.create({ deviceId: id });
  assert.strictEqual(created.deviceId, id);
  assert.ok(created.authentication.symmetricKey.primaryKey.length === 44, 'generated key');
  await assert.rejects(registry.create({ deviceId: id }), (e) => e.constructor.name === 'DeviceAlreadyExistsError');
  const { responseBody: list } = await registry.list();
  assert.ok(list.some((d) => d.deviceId === id));
  await registry.delete(id);
  await assert.rejects(registry.get(id), (e) => e.constructor.name === 'DeviceNotFoundError');

  const client = deviceClient(env('DEVICE_CS'));
  await client.open();
  client.onDeviceMethod('reboot', (req, res) => {
    res.send(200, { ok: true, got: req.payload }, () => {});
  });
  const service = Client.fromConnectionString(env('SERVICE_CS'));
  // The SUBSCRIBE is asynchronous; retry until the hub knows the device listens.
  let result;
  for (let i = 0; i < 50; i++) {
    try {
      result = await service.invokeDeviceMethod(env('DEVICE_ID'), { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 10 });
      break;
    } catch (e) {
      if (i === 49) throw e;
      await sleep(100);
    }
  }
  assert.strictEqual(result.result.status, 200);
  assert.deepStrictEqual(result.result.payload, { ok: true, got: { delay: 1 } });
  await assert.rejects(service.invokeDeviceMethod(env('DEVICE_ID'), { methodName: 'nohandler', responseTimeoutInSeconds: 1 }),
    (e) => e.constructor.name === 'GatewayTimeoutError');
  await client.close();
});
