// An OPC UA server written with node-opcua (npm), independent of asyncua: it offers only
// SignAndEncrypt with Basic256Sha256 and user names, limits reads to 100 nodes and monitored
// items to 50 per call, and serves machine M1 (Temp, Parts above 2^31, State) plus 300 values.
// Usage: OPCUA_TEST_PASSWORD=... node opcua_server.js PORT PKI_DIR [NAMESPACE]
// Prints "listening URL" when ready. Writes State 1, 2, 3 ... every 200 ms.
"use strict";
const {
  OPCUAServer, DataType, MessageSecurityMode, SecurityPolicy, OPCUACertificateManager,
} = require("node-opcua");

const port = parseInt(process.argv[2], 10);
const pki = process.argv[3];
const namespaceUri = process.argv[4] || "urn:test:node-opcua-plant";
const password = process.env.OPCUA_TEST_PASSWORD;

(async () => {
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: pki, automaticallyAcceptUnknownCertificate: true,
  });
  await serverCertificateManager.initialize();
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/ua",
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    allowAnonymous: false,
    userManager: { isValidUser: (user, pass) => user === "operator" && pass === password },
    serverCertificateManager,
    serverCapabilities: { operationLimits: { maxNodesPerRead: 100, maxMonitoredItemsPerCall: 50 } },
  });
  await server.initialize();
  const space = server.engine.addressSpace;
  const ns = space.registerNamespace(namespaceUri);
  const m1 = ns.addObject({ organizedBy: space.rootFolder.objects, browseName: "M1", nodeId: "s=M1" });
  ns.addVariable({ componentOf: m1, browseName: "Temp", nodeId: "s=M1.Temp", dataType: "Double",
    value: { dataType: DataType.Double, value: 21.5 } });
  ns.addVariable({ componentOf: m1, browseName: "Parts", nodeId: "s=M1.Parts", dataType: "UInt32",
    value: { dataType: DataType.UInt32, value: 3000000000 } });
  const state = ns.addVariable({ componentOf: m1, browseName: "State", nodeId: "s=M1.State", dataType: "Int32",
    value: { dataType: DataType.Int32, value: 1 } });
  for (let i = 0; i < 300; i++) {
    ns.addVariable({ componentOf: m1, browseName: "V" + i, nodeId: "s=M1.V" + i, dataType: "Double",
      value: { dataType: DataType.Double, value: i } });
  }
  let code = 1;
  setInterval(() => { code = code % 3 + 1; state.setValueFromSource({ dataType: DataType.Int32, value: code }); }, 200);
  await server.start();
  console.log("listening " + server.getEndpointUrl());
  process.on("SIGTERM", async () => { await server.shutdown(100); process.exit(0); });
})().catch((err) => { console.error(err); process.exit(1); });
