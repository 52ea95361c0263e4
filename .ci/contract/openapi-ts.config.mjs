// @hey-api/openapi-ts: zod schemas (and types) generated from openapi/openapi.json, which the
// agreement table (agreement.mjs) checks against the running server.
export default {
  input: "../../openapi/openapi.json",
  output: { path: "generated" },
  plugins: ["@hey-api/typescript", { name: "zod" }],
};
