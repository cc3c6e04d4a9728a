// Calls one function of a provider transpiled by jco and prints the result as one JSON line:
// {"ok": value} or {"err": {"tag": ..., "val": ...}}.
//   node run.mjs <transpiled.js> describe
//   node run.mjs <transpiled.js> refresh
//   node run.mjs <transpiled.js> complete-login '[["code","..."]]'
//   node run.mjs <transpiled.js> accept-push '<body>'
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [module, fn, arg] = process.argv.slice(2);
const { provider } = await import(pathToFileURL(resolve(module)).href);
const calls = {
  describe: () => provider.describe(),
  refresh: () => provider.refresh(undefined),
  "complete-login": () => provider.completeLogin(JSON.parse(arg)),
  "accept-push": () => provider.acceptPush(new TextEncoder().encode(arg)),
};
if (!calls[fn]) {
  console.error(`unknown function ${fn}; one of ${Object.keys(calls).join(", ")}`);
  process.exit(2);
}
let result;
try {
  result = { ok: calls[fn]() };
} catch (e) {
  if (e?.payload === undefined) throw e;
  result = { err: e.payload };
}
const plain = (_, v) => (typeof v === "bigint" ? Number(v) : v instanceof Uint8Array ? [...v] : v);
console.log(JSON.stringify(result, plain));
