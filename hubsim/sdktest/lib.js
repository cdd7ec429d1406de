'use strict';
// Shared helpers for the scenario scripts. Each scenario is a plain node
// script that exits 0 on success and non-zero (with a message) on failure;
// hubsim/sdk_test.go runs them against a live hubsim.
const https = require('https');
const assert = require('assert');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error('missing environment variable ' + name);
  return v;
}

// run executes an async scenario with a hard deadline.
function run(name, fn, timeoutMs = 60000) {
  const timer = setTimeout(() => {
    console.error(name + ': timed out after ' + timeoutMs + ' ms');
    process.exit(3);
  }, timeoutMs);
  fn().then(() => {
    clearTimeout(timer);
    console.log(name + ': ok');
    process.exit(0);
  }, (err) => {
    console.error(name + ': FAILED: ' + (err && err.stack || err));
    process.exit(1);
  });
}

function deviceClient(connectionString) {
  return DeviceClient.fromConnectionString(connectionString, Mqtt);
}

// hubsimRequest calls one of hubsim's own /edgegw/ endpoints.
function hubsimRequest(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: env('HUBSIM_HOST'), port: Number(env('HUBSIM_HTTP_PORT')), method, path,
      headers: Object.assign({ Authorization: env('HUBSIM_SERVICE_TOKEN') }, headers),
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// waitFor resolves when emitter emits event with an argument satisfying pred.
function waitFor(emitter, event, pred = () => true, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + event + ' within ' + timeoutMs + ' ms')), timeoutMs);
    const on = (...args) => {
      if (pred(...args)) {
        clearTimeout(t);
        emitter.removeListener(event, on);
        resolve(args);
      }
    };
    emitter.on(event, on);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { env, run, deviceClient, hubsimRequest, waitFor, sleep, assert, Message };
