'use strict';
// A wrong key: the provisioning SDK must fail with UnauthorizedError (DPS
// answers 401 on the response topic), not retry for ever.
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvMqtt } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { env, run, assert } = require('./lib');

run('provision-bad', async () => {
  const security = new SymmetricKeySecurityClient(env('REGISTRATION_ID'), env('DEVICE_KEY'));
  const prov = ProvisioningDeviceClient.create(env('DPS_HOST'), env('ID_SCOPE'), new ProvMqtt(), security);
  let err;
  try {
    await prov.register();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'register with a wrong key succeeded');
  assert.strictEqual(err.name, 'UnauthorizedError', 'error: ' + err);
}, 30000);
