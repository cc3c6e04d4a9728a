// wasi:keyvalue/store for a provider run under Node.js: one in-memory bucket per process
// (as `wasmtime run -S keyvalue` has), seeded from PROVIDER_KV, a JSON object of strings.
const data = new Map(
  Object.entries(JSON.parse(process.env.PROVIDER_KV ?? "{}")).map(([k, v]) => [k, new TextEncoder().encode(v)]),
);

class Bucket {
  get(key) {
    return data.get(key);
  }
  set(key, value) {
    data.set(key, new Uint8Array(value));
  }
  delete(key) {
    data.delete(key);
  }
  exists(key) {
    return data.has(key);
  }
  listKeys(_cursor) {
    return { keys: [...data.keys()], cursor: undefined };
  }
}

export const store = {
  Bucket,
  open(_identifier) {
    return new Bucket();
  },
};
