// Runs once, when the MongoDB container initialises an empty data volume (docker-compose.yml mounts it into
// /docker-entrypoint-initdb.d/). It makes the catalog's two users from the URIs in the Docker secrets that
// the workers read (MONGODB_URI_FILE), so each password exists in one file only:
//   vmhub-control  readWrite on the vmhub database: the control worker and the CLI write the catalog.
//   vmhub-agent    vmhubAgent: find on vmhub.sddcs only. An agent reads its SDDC's record at start and
//                  writes nothing (deployment rows are written by the control worker).
/* global db */
const fs = require('fs');
const vmhub = db.getSiblingDB('vmhub');

function userOf(secret) {
  const url = new URL(fs.readFileSync(`/run/secrets/${secret}`, 'utf8').trim());
  return { user: decodeURIComponent(url.username), pwd: decodeURIComponent(url.password) };
}

vmhub.createRole({
  role: 'vmhubAgent',
  privileges: [{ resource: { db: 'vmhub', collection: 'sddcs' }, actions: ['find'] }],
  roles: [],
});
vmhub.createUser({ ...userOf('catalog-control-uri'), roles: [{ role: 'readWrite', db: 'vmhub' }] });
vmhub.createUser({ ...userOf('catalog-agent-uri'), roles: [{ role: 'vmhubAgent', db: 'vmhub' }] });
