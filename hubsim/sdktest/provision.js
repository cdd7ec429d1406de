'use strict';
// Registers one device with hubsim's DPS through the official provisioning
// SDK (MQTT transport, symmetric key: an individual key, or a key derived
// from a group key as the SDK samples do), then connects to the hub it was
// assigned with azure-iot-device and sends telemetry. Prints the
// registration result as one JSON line for dps_sdk_test.go.
const crypto = require('crypto');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvMqtt } = require('azure-iot-provisioning-device-mqtt');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { env, run, deviceClient, Message, assert } = require('./lib');

function deviceKey() {
  if (process.env.GROUP_KEY) {
    return crypto.createHmac('SHA256', Buffer.from(process.env.GROUP_KEY, 'base64'))
      .update(env('REGISTRATION_ID'), 'utf8').digest('base64');
  }
  return env('DEVICE_KEY');
}

run('provision', async () => {
  const regId = env('REGISTRATION_ID');
  const key = deviceKey();
  const security = new SymmetricKeySecurityClient(regId, key);
  const prov = ProvisioningDeviceClient.create(env('DPS_HOST'), env('ID_SCOPE'), new ProvMqtt(), security);
  const result = await prov.register();
  assert.strictEqual(result.status, 'assigned', 'status');
  assert.strictEqual(result.registrationId, regId, 'registrationId');
  console.log(JSON.stringify({ assignedHub: result.assignedHub, deviceId: result.deviceId, substatus: result.substatus }));
  const cs = 'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + key;
  const client = deviceClient(cs);
  await client.open();
  const m = new Message(JSON.stringify({ provisioned: regId }));
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  await client.sendEvent(m);
  await client.close();
});
