'use strict';
// Sends telemetry through the gateway's LAN broker with the official Azure
// IoT device SDK (MQTT transport), as a leaf device would. Driven by
// sdk_test.go; SDK_MODULES points at an installed node_modules.
const path = require('path');
const modules = process.env.SDK_MODULES;
const { Client, Message } = require(path.join(modules, 'azure-iot-device'));
const { Mqtt } = require(path.join(modules, 'azure-iot-device-mqtt'));

const timer = setTimeout(() => { console.error('timed out'); process.exit(3); }, 60000);
(async () => {
  const client = Client.fromConnectionString(process.env.DEVICE_CS, Mqtt);
  await client.open();
  const m = new Message(JSON.stringify({ temperature: 21.5 }));
  m.messageId = 'mid-1';
  m.correlationId = 'cid 1';
  m.contentType = 'application/json';
  m.contentEncoding = 'utf-8';
  m.properties.add('alert', 'yes&no=maybe/so');
  await client.sendEvent(m);
  await client.sendEvent(new Message('second'));
  await client.close();
})().then(() => { clearTimeout(timer); process.exit(0); },
  (err) => { console.error('FAILED: ' + (err && err.stack || err)); process.exit(1); });
