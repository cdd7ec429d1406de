'use strict';
// Preloaded with NODE_OPTIONS=--require: azure-iothub's REST client calls
// https.request({host: HostName}) with no port, so requests for the hub's
// host name are sent to HUBSIM_HTTP_PORT instead of 443.
const https = require('https');
const host = process.env.HUBSIM_HOST;
const port = Number(process.env.HUBSIM_HTTP_PORT);
const original = https.request;
https.request = function (options, ...rest) {
  if (host && port && options && typeof options === 'object' && !(options instanceof URL) &&
      (options.host === host || options.hostname === host) && !options.port) {
    options = Object.assign({}, options, { port });
  }
  return original.call(this, options, ...rest);
};
