'use strict';
// X.509 authentication: GatewayHostName is ignored for x509 connection
// strings, so HostName carries the port.
const fs = require('fs');
const { env, run, deviceClient, Message } = require('./lib');

run('x509', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  client.setOptions({ cert: fs.readFileSync(env('CERT_FILE'), 'utf8'), key: fs.readFileSync(env('KEY_FILE'), 'utf8') });
  await client.open();
  await client.sendEvent(new Message('x509 hello'));
  await client.close();
});
