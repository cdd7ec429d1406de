'use strict';
// Reads and deletes a registration state with the provisioning service SDK.
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { env, run, assert } = require('./lib');

run('regstate', async () => {
  const svc = ProvisioningServiceClient.fromConnectionString(env('DPS_SERVICE_CS'));
  const st = (await svc.getDeviceRegistrationState(env('REGISTRATION_ID'))).responseBody;
  assert.strictEqual(st.status, 'assigned');
  console.log(JSON.stringify({ assignedHub: st.assignedHub, deviceId: st.deviceId }));
  await svc.deleteDeviceRegistrationState(env('REGISTRATION_ID'));
});
