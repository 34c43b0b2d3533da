// A three-phase meter (unit 2) and a machine controller (unit 3) behind one Modbus TCP gateway,
// written with modbus-serial (npm) and Node's Buffer encoders: an implementation independent of
// ours and of pymodbus. Unit 9 is a dead unit the gateway answers with exception 11. Any read that
// touches the meter's unmapped registers 8..9 is refused with exception 2.
// Usage: node meter.js PORT   (prints "listening PORT" when ready)
"use strict";
const ModbusRTU = require("modbus-serial");

function words(buf) {
  const out = [];
  for (let i = 0; i < buf.length; i += 2) out.push(buf.readUInt16BE(i));
  return out;
}
function f32(v) { const b = Buffer.alloc(4); b.writeFloatBE(v); return words(b); }
function f32cdab(v) { const w = f32(v); return [w[1], w[0]]; }
function f64(v) { const b = Buffer.alloc(8); b.writeDoubleBE(v); return words(b); }
function u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64BE(v); return words(b); }
function i64cdab(v) { const b = Buffer.alloc(8); b.writeBigInt64BE(v); return words(b).reverse(); }
function i32(v) { const b = Buffer.alloc(4); b.writeInt32BE(v); return words(b); }
function ascii(text, registers) {
  const b = Buffer.alloc(registers * 2); b.write(text, "ascii"); return words(b);
}

const meterHolding = new Map();
function put(map, address, values) { values.forEach((v, i) => map.set(address + i, v)); }
put(meterHolding, 0, [...f32(230.5), ...f32(231.25), ...f32(229.75), ...f32(50)]);
put(meterHolding, 10, u64(123456789012n));
put(meterHolding, 14, f64(123456.789012));
put(meterHolding, 20, ascii("EM340-0001234567", 8));
put(meterHolding, 28, [1]);
put(meterHolding, 30, i64cdab(-9876543210n));
put(meterHolding, 34, f32cdab(0.98));
const meterInput = new Map();
put(meterInput, 0, i32(-1500000));
const controller = new Map();
put(controller, 0, [2, ...words(Buffer.from([0xee, 0x6b, 0x28, 0x00]))]);

function fail(code) { const e = new Error("exception " + code); e.modbusErrorCode = code; return e; }
function read(unit, table, address, length, callback) {
  if (unit === 9) return callback(fail(11));
  const map = unit === 2 ? (table === "holding" ? meterHolding : meterInput) : unit === 3 ? controller : null;
  if (map === null) return callback(fail(11));
  const out = [];
  for (let a = address; a < address + length; a++) {
    if (!map.has(a)) return callback(fail(2));
    out.push(map.get(a));
  }
  callback(null, out);
}

const vector = {
  getMultipleHoldingRegisters: (address, length, unit, cb) => read(unit, "holding", address, length, cb),
  getMultipleInputRegisters: (address, length, unit, cb) => read(unit, "input", address, length, cb),
  getHoldingRegister: (address, unit, cb) => read(unit, "holding", address, 1, (e, v) => cb(e, v && v[0])),
  getInputRegister: (address, unit, cb) => read(unit, "input", address, 1, (e, v) => cb(e, v && v[0])),
  getCoil: (address, unit, cb) => cb(fail(2)),
};

const port = parseInt(process.argv[2], 10);
const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID: 255 });
server.on("socketError", () => {});
server.on("initialized", () => console.log("listening " + port));
