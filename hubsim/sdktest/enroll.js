'use strict';
// The provisioning service SDK (azure-iot-provisioning-service) manages
// enrollments in hubsim's DPS: create, read, a stale etag refused, query,
// delete. NODE_OPTIONS preloads port-shim.js (the SDK cannot take a port).
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { env, run, assert } = require('./lib');

run('enroll', async () => {
  const svc = ProvisioningServiceClient.fromConnectionString(env('DPS_SERVICE_CS'));
  const group = {
    enrollmentGroupId: 'svc-group',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: env('GROUP_KEY'), secondaryKey: env('GROUP_KEY') } },
    provisioningStatus: 'enabled',
    initialTwin: { tags: { plant: 'north' }, properties: { desired: { interval: 10 } } },
  };
  const created = (await svc.createOrUpdateEnrollmentGroup(group)).responseBody;
  assert.ok(created.etag, 'etag');
  assert.strictEqual(created.attestation.symmetricKey.primaryKey, env('GROUP_KEY'));
  const got = (await svc.getEnrollmentGroup('svc-group')).responseBody;
  assert.strictEqual(got.etag, created.etag);
  let err;
  try {
    await svc.createOrUpdateEnrollmentGroup(Object.assign({}, group, { etag: 'stale' }));
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'stale etag accepted');
  assert.strictEqual(err.response && err.response.statusCode, 412, 'stale etag: ' + err);
  const ind = (await svc.createOrUpdateIndividualEnrollment({
    registrationId: 'svc-ind', deviceId: 'svc-ind-dev', attestation: { type: 'symmetricKey' },
  })).responseBody;
  assert.ok(ind.attestation.symmetricKey.primaryKey, 'generated key');
  const page = await new Promise((resolve, reject) => {
    svc.createIndividualEnrollmentQuery({ query: 'SELECT *' }).next((e, result) => (e ? reject(e) : resolve(result)));
  });
  assert.ok(page.some((e) => e.registrationId === 'svc-ind'), 'query: ' + JSON.stringify(page));
  await svc.deleteIndividualEnrollment('svc-ind');
  try {
    await svc.getIndividualEnrollment('svc-ind');
    throw new Error('deleted enrollment still there');
  } catch (e) {
    assert.strictEqual(e.response && e.response.statusCode, 404, 'get deleted: ' + e);
  }
});
