#!/usr/bin/env node
// Interop check for dmwsi: build a client with the npm "soap" package from the
// server's own WSDL (URL?wsdl), call GetServiceInfo and print the result as JSON.
//
//   node call_service_info.js http://127.0.0.1:8080/soap
//
// Exit status 0 with one JSON document on stdout on success; non-zero with the
// error on stderr otherwise.
'use strict';

const soap = require('soap');

async function main(argv) {
  const url = argv[2];
  if (!url) {
    console.error('usage: node call_service_info.js SOAP_URL');
    return 2;
  }
  const client = await soap.createClientAsync(`${url}?wsdl`, { endpoint: url });
  // GetServiceInfo has an empty request element.
  const [result] = await client.GetServiceInfoAsync({});
  const info = result && result.info;
  if (!info) {
    throw new Error(`no <info> in GetServiceInfoResponse: ${JSON.stringify(result)}`);
  }
  // Single-occurrence repeated elements come back as scalars; normalise to lists.
  const list = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
  process.stdout.write(JSON.stringify({
    interfaceVersions: list(info.interfaceVersions),
    callbackVersions: list(info.callbackVersions),
    operations: list(info.operations),
    managementObjects: list(info.managementObjects),
    serverCertificate: info.serverCertificate ?? null,
    serverTime: info.serverTime ?? null,
    services: Object.keys(client.describe()),
  }) + '\n');
  return 0;
}

main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => {
    console.error(err && err.root ? JSON.stringify(err.root) : err && err.stack ? err.stack : String(err));
    process.exitCode = 1;
  },
);
