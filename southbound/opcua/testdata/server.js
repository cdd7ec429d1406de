// A node-opcua server with the address space of a boiler, started by the
// southbound/opcua and gateway tests on a loopback port.
//
//   node server.js --port N --pki DIR [--bench N --bench-interval MS]
//
// It prints "READY <endpoint>" once it listens, "WRITE <node> <json>" after
// a client wrote a variable, "CALL <method> <json args>" after a method
// call, and takes commands on stdin, one a line:
//
//   set <name> <json>   set a variable (Good status, source time now)
//   bad <name>          make a variable Bad (BadSensorFailure)
//   cert                print "CERT <hex DER>" of the server certificate
//
// Names are the part after "s=" of the string NodeIds below.
"use strict";
const path = require("path");
const readline = require("readline");
const opcua = require("node-opcua");
const { DataType, Variant, VariantArrayType, StatusCodes } = opcua;

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  return i > 0 ? process.argv[i + 1] : def;
}
const port = parseInt(arg("port", "4840"), 10);
const pki = arg("pki", path.join(__dirname, "pki"));
const benchItems = parseInt(arg("bench", "0"), 10);
const benchInterval = parseInt(arg("bench-interval", "1000"), 10);

// The boiler's variables: name, data type, initial value, array length.
const scalars = [
  ["Boiler.Running", DataType.Boolean, true],
  ["Boiler.Mode", DataType.SByte, -3],
  ["Boiler.Stage", DataType.Byte, 200],
  ["Boiler.Offset", DataType.Int16, -1200],
  ["Boiler.Hours", DataType.UInt16, 60000],
  ["Boiler.Delta", DataType.Int32, -70000],
  ["Boiler.Starts", DataType.UInt32, 4000000000],
  ["Boiler.Energy", DataType.Int64, [0x12, 0x34567890]], // high, low words
  ["Boiler.Counter", DataType.UInt64, [0, 7]],
  ["Boiler.Flow", DataType.Float, 12.25],
  ["Boiler.Firmware", DataType.String, "V1.2"],
  ["Boiler.LastService", DataType.DateTime, new Date("2026-01-02T03:04:05.678Z")],
  ["Boiler.Sensor", DataType.Double, 1.5],
];

async function main() {
  const server = new opcua.OPCUAServer({
    port,
    hostname: "127.0.0.1",
    alternateHostname: ["127.0.0.1"],
    resourcePath: "/UA/Boiler",
    buildInfo: { productName: "Boiler test server", buildNumber: "1", buildDate: new Date(0) },
    serverCertificateManager: new opcua.OPCUACertificateManager({
      automaticallyAcceptUnknownCertificate: true,
      rootFolder: path.join(pki, "server"),
    }),
    userCertificateManager: new opcua.OPCUACertificateManager({
      automaticallyAcceptUnknownCertificate: true,
      rootFolder: path.join(pki, "user"),
    }),
    userManager: {
      isValidUser: (user, password) => user === "operator" && password === "s3cret",
    },
    allowAnonymous: true,
    securityPolicies: [
      opcua.SecurityPolicy.None,
      opcua.SecurityPolicy.Basic256Sha256,
      opcua.SecurityPolicy.Aes128_Sha256_RsaOaep,
    ],
    securityModes: [opcua.MessageSecurityMode.None, opcua.MessageSecurityMode.Sign, opcua.MessageSecurityMode.SignAndEncrypt],
    serverCapabilities: { maxSessions: 50, operationLimits: { maxMonitoredItemsPerCall: 10000, maxNodesPerRead: 10000 } },
    maxConnectionsPerEndpoint: 50,
  });
  await server.initialize();
  const space = server.engine.addressSpace;
  const ns = space.getOwnNamespace();
  const boiler = ns.addObject({ organizedBy: space.rootFolder.objects, browseName: "Boiler", nodeId: "s=Boiler" });
  const vars = {};

  function add(name, dataType, value, opts = {}) {
    const v = ns.addVariable({
      componentOf: boiler,
      browseName: name.split(".").pop(),
      nodeId: opts.nodeId || "s=" + name,
      dataType,
      valueRank: opts.array ? 1 : -1,
      arrayDimensions: opts.array ? [opts.array] : undefined,
      accessLevel: opts.writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: opts.writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
    });
    v.__type = dataType;
    v.__array = !!opts.array;
    setValue(v, value);
    if (opts.writable) {
      v.on("value_changed", (dv) => {
        if (v.__settingFromScript) return;
        console.log("WRITE " + name + " " + JSON.stringify(plain(dv.value.value)));
      });
    }
    vars[name] = v;
    return v;
  }
  function setValue(v, value) {
    v.__settingFromScript = true;
    try {
      const variant = v.__array
        ? new Variant({ dataType: v.__type, arrayType: VariantArrayType.Array, value })
        : new Variant({ dataType: v.__type, arrayType: VariantArrayType.Scalar, value });
      v.setValueFromSource(variant, StatusCodes.Good, new Date());
    } finally {
      v.__settingFromScript = false;
    }
  }

  for (const [name, type, value] of scalars) add(name, type, value);
  // Percent deadbands need an engineering range: Temperature is an analog item.
  vars["Boiler.Temperature"] = ns.addAnalogDataItem({
    componentOf: boiler,
    browseName: "Temperature",
    nodeId: "s=Boiler.Temperature",
    dataType: "Double",
    engineeringUnitsRange: { low: 0, high: 200 },
    value: new Variant({ dataType: DataType.Double, value: 20 }),
  });
  vars["Boiler.Temperature"].__type = DataType.Double;
  add("Boiler.Setpoint", DataType.Double, 50, { writable: true });
  add("Boiler.Level", DataType.Int16, 10, { writable: true });
  add("Boiler.Enabled", DataType.Boolean, false, { writable: true });
  add("Boiler.Temps", DataType.Double, [20.5, 21.5, 22.5, 23.5], { array: 4 });
  add("Boiler.Valves", DataType.Boolean, [true, false, true], { array: 3 });
  // Numeric, GUID and opaque NodeIds.
  add("Boiler.Pressure", DataType.Double, 1.25, { nodeId: "i=1001" });
  add("Boiler.Serial", DataType.String, "SN-42", { nodeId: "g=72962b91-fa75-4ae6-8d28-b404dc7daf63" });
  add("Boiler.Tag", DataType.UInt32, 77, { nodeId: "b=Ym9pbGVyLXRhZw==" });

  const start = ns.addMethod(boiler, {
    browseName: "Start",
    nodeId: "s=Boiler.Start",
    inputArguments: [
      { name: "power", dataType: DataType.Double },
      { name: "duration", dataType: DataType.UInt32 },
    ],
    outputArguments: [
      { name: "accepted", dataType: DataType.Boolean },
      { name: "message", dataType: DataType.String },
    ],
  });
  start.bindMethod((inputs, context, callback) => {
    const power = inputs[0].value, duration = inputs[1].value;
    console.log("CALL Boiler.Start " + JSON.stringify([power, duration]));
    if (power > 100) {
      callback(null, { statusCode: StatusCodes.BadOutOfRange });
      return;
    }
    callback(null, {
      statusCode: StatusCodes.Good,
      outputArguments: [
        { dataType: DataType.Boolean, value: true },
        { dataType: DataType.String, value: `burner at ${power}% for ${duration}s` },
      ],
    });
  });

  if (benchItems > 0) {
    const bench = ns.addObject({ organizedBy: space.rootFolder.objects, browseName: "Bench", nodeId: "s=Bench" });
    const items = [];
    for (let i = 0; i < benchItems; i++) {
      items.push(
        ns.addVariable({
          componentOf: bench,
          browseName: "V" + i,
          nodeId: "s=Bench." + i,
          dataType: "Double",
          value: new Variant({ dataType: DataType.Double, value: 0 }),
        })
      );
    }
    let n = 0;
    const timer = setInterval(() => {
      n++;
      const now = new Date();
      for (const v of items) v.setValueFromSource(new Variant({ dataType: DataType.Double, value: n }), StatusCodes.Good, now);
    }, benchInterval);
    timer.unref();
  }

  await server.start();
  console.log("READY " + server.getEndpointUrl());

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, name, ...rest] = line.trim().split(" ");
    try {
      if (cmd === "cert") {
        console.log("CERT " + server.getCertificate().toString("hex"));
        return;
      }
      const v = vars[name];
      if (!v) throw new Error("unknown variable " + name);
      if (cmd === "set") {
        let value = JSON.parse(rest.join(" "));
        if (v.__type === DataType.DateTime) value = new Date(value);
        setValue(v, value);
      } else if (cmd === "bad") {
        v.setValueFromSource(new Variant({ dataType: v.__type, value: v.readValue().value.value }), StatusCodes.BadSensorFailure, new Date());
      } else {
        throw new Error("unknown command " + cmd);
      }
      console.log("OK " + line.trim());
    } catch (err) {
      console.log("ERR " + err.message);
    }
  });
  rl.on("close", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function plain(v) {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Date) return v.toISOString();
  if (ArrayBuffer.isView(v)) return Array.from(v);
  return v;
}

main().catch((err) => {
  console.error("server failed: " + (err && err.stack ? err.stack : err));
  process.exit(1);
});
