'use strict';
// SAS token renewal with a short lifetime: the SDK reconnects with a new
// token before each expiry (hubsim enforces expiry with no clock skew in
// this test) and telemetry keeps flowing.
const { env, run, deviceClient, Message, sleep } = require('./lib');

run('renewal', async () => {
  const client = deviceClient(env('DEVICE_CS'));
  client.setOptions({ tokenRenewal: { tokenValidTimeInSeconds: 4, tokenRenewalMarginInSeconds: 2 } });
  await client.open();
  for (let i = 0; i < 8; i++) {
    await client.sendEvent(new Message('tick ' + i));
    await sleep(1000);
  }
  await client.close();
}, 90000);
