// wasi:config/store for a provider run under Node.js: its settings come from the
// PROVIDER_SETTINGS environment variable, a JSON object such as {"api-key": "..."}.
const settings = JSON.parse(process.env.PROVIDER_SETTINGS ?? "{}");

export const store = {
  get(key) {
    const value = settings[key];
    return typeof value === "string" ? value : undefined;
  },
  getAll() {
    return Object.entries(settings).filter(([, v]) => typeof v === "string");
  },
};
