// The agreement table: for every form field, values on which the zod validators generated from
// openapi/openapi.json (@hey-api/openapi-ts, generated/zod.gen.ts) and the running server must
// agree. A value is sent as that field of an otherwise valid body:
//   - the client accepts it when the body's zod schema reports no issue at that field;
//   - the server refuses it when it answers 400 `malformed_request` (a wrong JSON type) or a
//     422 whose `errors` name the field; any other answer (201, 202, 401, 409, …) means the
//     field passed validation.
// Each row must agree. EXCEPTIONS lists the values where they differ on purpose (rules only the
// server checks, what trimming changes); each must still differ exactly as listed, so the
// list stays true.
//
//   node agreement.mjs BINARY
//
// To extend: add a form to FORMS (its endpoint, zod schema name, a valid body) and, for each of
// its fields, at least three values both sides accept and three both refuse. Add new forms at
// the end: fileRequest() reads FORMS[3].
//
// Fields with fewer than three valid values because fewer exist: the three must-be-true
// statements of a recovery request (only `true`) and the approval's `deliver_to` (an enum of
// two). Fields not in the table yet (audit of issue 15): the new_password of the reset
// confirmation and recovery completion; the code of the recovery-code login, TOTP confirm and
// TOTP disable; the password of 2FA disable, enrol and new codes; change-password
// current_password; ownership confirm; email-change password and new_email; passkey name
// (register, rename); remove-passkey password and code; the support queue filters.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, rmSync, createWriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.argv[2] && resolve(process.argv[2]);
if (!bin) {
  console.error("usage: node agreement.mjs BINARY");
  process.exit(2);
}

// --- the values ---------------------------------------------------------------------------

const rep = (s, n) => s.repeat(n);
/** Deterministic high-entropy text of `n` characters (a strong password of any length). */
function noise(n, seed = 7) {
  const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#%*+-=?@";
  let x = seed >>> 0;
  let out = "";
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out += alphabet[(x >>> 16) % alphabet.length];
  }
  return out;
}

const EMAIL = {
  valid: ["ana@example.com", "first.last+tag@mail.example.org", "x9@a-b.io"],
  invalid: ["not-an-address", "two@@example.com", "user@localhost", `${rep("a", 64)}@${rep("b", 63)}.${rep("c", 63)}.${rep("d", 58)}.com`, 42],
};
const LOGIN = {
  valid: ["jbber", "someone@example.com", rep("a", 254)],
  invalid: ["", rep("a", 255), 42, null],
};
const FREE_TEXT = {
  valid: ["a", rep("x", 5000), "line one\nline two\tindented"],
  invalid: ["", rep("x", 5001), 42, null],
};

// A token sent back: any text up to TOKEN_MAX_CHARS (2048); an unknown one passes validation
// and is refused by the lookup (400 or 401).
const TOKEN = {
  valid: ["x", rep("t", 2048), "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM"],
  invalid: [rep("t", 2049), 42, null],
};

let serial = 0;
const unique = () => `${Date.now().toString(36)}${(serial++).toString(36)}`;

const FORMS = [
  {
    form: "register",
    path: "/api/v1/accounts",
    schema: "zRegisterBody",
    body: () => {
      const u = `probe${unique()}`;
      return { username: u, email: `${u}@example.com`, password: "orbit lantern mosaic 42" };
    },
    fields: {
      username: {
        valid: ["ana_lopez-99", "Élise.dev", rep("k", 50), "日本語の名前"],
        invalid: ["jb", rep("k", 51), "jb ber", "jb@ber", "", 42],
      },
      email: EMAIL,
      password: {
        valid: ["velvet compass harbor 19", noise(16, 11), noise(128, 12)],
        invalid: ["short1!", "🙂🙂🙂🙂", "", noise(129, 13), 42],
      },
    },
  },
  {
    form: "login",
    path: "/api/v1/sessions",
    schema: "zLoginBody",
    body: () => ({ login: "nobody-here", password: "orbit lantern mosaic 42" }),
    fields: {
      login: LOGIN,
      password: { valid: ["x", "", "correct horse battery staple", rep("p", 1024)], invalid: [42, null, true, rep("p", 1025)] },
    },
  },
  {
    form: "password reset",
    path: "/api/v1/password-resets",
    schema: "zStartPasswordResetBody",
    body: () => ({ login: "nobody-here" }),
    fields: { login: LOGIN },
  },
  {
    form: "recovery request",
    path: "/api/v1/recovery-requests",
    schema: "zSubmitBody",
    body: () => ({
      username: "jbber",
      contact_email: `c${unique()}@example.org`,
      reason: "I lost my phone with the authenticator app and my recovery codes.",
      recovery_codes_lost: true,
      code_of_conduct_accepted: true,
      processing_time_acknowledged: true,
    }),
    fields: {
      username: { valid: ["jbber", "x", rep("n", 50)], invalid: ["", rep("n", 51), 42, null] },
      contact_email: EMAIL,
      reason: {
        valid: ["0123456789", rep("r", 5000), "Lost my phone,\nand the codes."],
        invalid: ["too short", rep("r", 5001), "", null],
      },
      // A statement has one valid value.
      recovery_codes_lost: { valid: [true], invalid: [false, "true", null, 1] },
      code_of_conduct_accepted: { valid: [true], invalid: [false, "yes", null, 0] },
      processing_time_acknowledged: { valid: [true], invalid: [false, "true", null, []] },
    },
  },
  {
    form: "tracking links",
    path: "/api/v1/recovery-requests/tracking-links",
    schema: "zTrackingLinksBody",
    body: () => ({ contact_email: "c@example.org" }),
    fields: { contact_email: EMAIL },
  },
  {
    form: "requester reply",
    path: "/api/v1/recovery-requests/{id}/messages",
    schema: "zMessageBody",
    needs: "request",
    body: () => ({ body: "My last release was mypkg 2.3.1." }),
    fields: { body: FREE_TEXT },
  },
  {
    form: "change password",
    path: "/api/v1/account/password",
    method: "PUT",
    schema: "zChangePasswordBody",
    needs: "account",
    body: () => ({ current_password: "(the account's password)", new_password: noise(24, serial++) }),
    fields: {
      new_password: {
        valid: ["quartz meadow lantern 88", noise(16, 21), noise(128, 22)],
        invalid: ["short1!", "", noise(129, 23), 42],
      },
    },
  },
  {
    form: "support note",
    path: "/api/v1/admin/recovery-requests/{id}/notes",
    schema: "zMessageBody",
    needs: "support",
    body: () => ({ body: "Checked the release history." }),
    fields: { body: FREE_TEXT },
  },
  {
    form: "support denial",
    path: "/api/v1/admin/recovery-requests/{id}/deny",
    schema: "zDenyBody",
    needs: "support",
    body: () => ({ reason: "We could not verify that you own this account." }),
    fields: { reason: FREE_TEXT },
  },
  {
    form: "support approval",
    path: "/api/v1/admin/recovery-requests/{id}/approve",
    schema: "zApproveBody",
    needs: "support",
    body: () => ({ comment: "Ownership proven.", deliver_to: "account_email" }),
    fields: {
      comment: { valid: ["", rep("c", 5000), "two\nlines"], invalid: [rep("c", 5001), 42, false] },
      justification: { valid: ["", rep("j", 5000), "asked by phone"], invalid: [rep("j", 5001), 42, {}] },
      deliver_to: { valid: ["account_email", "contact_email"], invalid: ["phone", "", 3] },
    },
    // contact_email needs a justification: give one to the rows of deliver_to.
    adjust: (field, body) => (field === "deliver_to" ? { ...body, justification: "asked by phone" } : body),
  },
  {
    form: "totp login",
    path: "/api/v1/sessions/totp",
    schema: "zSecondStepBody",
    body: () => ({ mfa_token: "an-unknown-mfa-token", code: "492039" }),
    fields: {
      mfa_token: TOKEN,
      code: { valid: ["492039", "k3vq-9x2m-hh4t-a7pe-w0cd", rep("1", 64)], invalid: [rep("1", 65), 42, null] },
    },
  },
  {
    form: "passkey login options",
    path: "/api/v1/sessions/webauthn/options",
    schema: "zWebauthnOptionsBody",
    body: () => ({ mfa_token: "an-unknown-mfa-token" }),
    fields: { mfa_token: TOKEN },
  },
  {
    form: "password reset confirm",
    path: "/api/v1/password-resets/confirm",
    schema: "zConfirmPasswordResetBody",
    body: () => ({ token: "an-unknown-token", new_password: "quartz meadow lantern 88" }),
    fields: { token: TOKEN },
  },
];

// Values where the generated validator and the server differ on purpose: the rules only the
// server checks (docs/api.md, "checked only by the server"). `client` and `server` say which
// side accepts.
const EXCEPTIONS = [
  { form: "register", field: "username", value: "jbbеr", client: true, server: false, why: "mixed scripts (Cyrillic е): server only (`confusable`)" },
  { form: "register", field: "username", value: "smile🙂", client: true, server: false, why: "a symbol outside letters and digits: the pattern refuses only ASCII punctuation" },
  { form: "register", field: "username", value: "  spaced  ", client: false, server: true, why: "the server trims surrounding spaces first" },
  { form: "register", field: "password", value: "password1234", client: true, server: false, why: "a common breached password (`breached`): server only" },
  { form: "register", field: "password", value: "aaaaaaaaaaaa", client: true, server: false, why: "guessable (`weak`, zxcvbn): server only" },
  { form: "change password", field: "new_password", value: "agreement-owner-77", client: true, server: false, why: "contains the username (`contains_personal_info`): server only" },
  { form: "register", field: "email", value: "josé@example.com", client: false, server: true, why: "zod's email format is ASCII; the server accepts letters of one script" },
  { form: "login", field: "login", value: "   ", client: true, server: false, why: "the server trims: blank is `required`" },
  { form: "recovery request", field: "reason", value: "   short   ", client: true, server: false, why: "the server counts characters after trimming" },
  { form: "requester reply", field: "body", value: "   ", client: true, server: false, why: "the server trims: blank is `required`" },
  { form: "support approval", field: "justification", value: "", client: true, server: false, why: "required with deliver_to contact_email: a rule across fields", body: { deliver_to: "contact_email" } },
];

// --- the generated validators ---------------------------------------------------------------

function loadZod() {
  const source = readFileSync(join(here, "generated", "zod.gen.ts"), "utf8");
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const out = join(here, "generated", "zod.gen.mjs");
  writeFileSync(out, js);
  return import(out);
}

// --- the server -----------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const work = mkdtempSync(join(tmpdir(), "agreement-"));
  const port = await freePort();
  const limit = "1000000/1h";
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    APP_ENV: "development",
    DATABASE_URL: join(work, "agreement.db"),
    BIND_ADDR: `127.0.0.1:${port}`,
    METRICS_BIND_ADDR: "off",
    WORKERS: "2",
    MAIL_TRANSPORT: "log",
    JWT_SECRET: "agreement-jwt-secret-0123456789abcdef",
    DATA_ENCRYPTION_KEY: "agreement-data-key-0123456789abcdef",
    ARGON2_MEMORY_KIB: "64",
    ARGON2_ITERATIONS: "1",
    RUST_LOG: "warn",
  };
  for (const name of [
    "LOGIN_PER_ACCOUNT", "LOGIN_PER_IP", "SECOND_FACTOR", "PASSWORD_RESET_PER_IP",
    "PASSWORD_RESET_EMAILS", "VERIFICATION_EMAILS", "RECOVERY_REQUEST_PER_IP",
    "OWNERSHIP_EMAILS", "REGISTRATION_PER_IP", "RECOVERY_REPLIES", "TRACKING_LINK_EMAILS",
  ]) {
    env[`RATE_LIMIT_${name}`] = limit;
  }
  const log = createWriteStream(join(work, "server.log"));
  const child = spawn(bin, ["serve"], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`${base}/health/ready`)).ok) {
        return { base, env, work, stop: () => { child.kill("SIGTERM"); rmSync(work, { recursive: true, force: true }); } };
      }
    } catch {}
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`the server did not start:\n${readFileSync(join(work, "server.log"), "utf8").slice(-2000)}`);
}

/** An account of its own and a session (for the forms of a signed-in user). */
async function ownAccount(server) {
  const account = { username: "agreement-owner", password: "orbit lantern mosaic 42" };
  const made = await call(server, "POST", "/api/v1/accounts", { ...account, email: "owner-box@example.org" });
  if (made.status !== 201) throw new Error(`registering: ${made.status} ${made.text}`);
  const r = await call(server, "POST", "/api/v1/sessions", { login: account.username, password: account.password });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${r.text}`);
  return { ...account, token: r.json.access_token };
}

async function call(server, method, path, body, headers = {}) {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: res.status, json, text };
}

/** A filed recovery request (its id and tracking token) for the forms that act on one. */
async function fileRequest(server) {
  const r = await call(server, "POST", "/api/v1/recovery-requests", FORMS[3].body());
  if (r.status !== 202) throw new Error(`filing a request: ${r.status} ${r.text}`);
  return { id: r.json.id, token: r.json.tracking_token };
}

/** A support user (made with the command line) and its access token. */
async function supportToken(server) {
  const password = "velvet compass harbor 19";
  const made = spawnSync(bin, ["support-user", "create", "--username", "agreement-support", "--email", "staff-desk@example.org", "--password-stdin"], {
    cwd: server.work, env: server.env, input: `${password}\n`, encoding: "utf8", timeout: 60000,
  });
  if (made.status !== 0) throw new Error(`support-user create: ${made.stderr}`);
  const r = await call(server, "POST", "/api/v1/sessions", { login: "agreement-support", password });
  if (r.status !== 200) throw new Error(`support login: ${r.status} ${r.text}`);
  return r.json.access_token;
}

// --- the check ------------------------------------------------------------------------------

function clientAccepts(schema, body, field) {
  const result = schema.safeParse(body);
  return result.success || !result.error.issues.some((i) => i.path[0] === field);
}

function serverAccepts(res, field) {
  if (res.status === 400 && res.json?.code === "malformed_request") return false;
  if (res.status === 422) {
    return !(res.json?.errors ?? []).some((e) => e.field === field);
  }
  if (res.status >= 500) throw new Error(`a ${res.status}: ${res.text}`);
  return true;
}

const show = (v) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 30)}…(${typeof v === "string" ? v.length : s.length})` : s;
};

async function main() {
  const zod = await loadZod();
  const server = await startServer();
  const failures = [];
  const perField = [];
  let rows = 0;
  let valid = 0;
  let invalid = 0;
  try {
    const support = await supportToken(server);
    const owner = await ownAccount(server);
    async function send(form, body, field) {
      let path = form.path;
      const headers = {};
      if (form.needs === "request") {
        const r = await fileRequest(server);
        path = path.replace("{id}", r.id);
        headers["x-tracking-token"] = r.token;
      } else if (form.needs === "support") {
        const r = await fileRequest(server);
        path = path.replace("{id}", r.id);
        headers.authorization = `Bearer ${support}`;
      } else if (form.needs === "account") {
        headers.authorization = `Bearer ${owner.token}`;
        if (field !== "current_password") body = { ...body, current_password: owner.password };
      }
      const res = await call(server, form.method ?? "POST", path, body, headers);
      // A change that went through: the account's password is the new one now.
      if (form.needs === "account" && res.status === 204) owner.password = body.new_password;
      return res;
    }
    for (const form of FORMS) {
      const schema = zod[form.schema];
      if (!schema) throw new Error(`${form.schema} is not in the generated client`);
      for (const [field, values] of Object.entries(form.fields)) {
        const cases = [
          ...values.valid.map((value) => ({ value, client: true, server: true })),
          ...values.invalid.map((value) => ({ value, client: false, server: false })),
          ...EXCEPTIONS.filter((e) => e.form === form.form && e.field === field),
        ];
        perField.push(`${form.form}.${field}: ${values.valid.length} valid, ${values.invalid.length} invalid`);
        for (const c of cases) {
          let body = { ...form.body(), ...(c.body ?? {}), [field]: c.value };
          if (form.adjust && !c.body) body = form.adjust(field, body);
          if (c.value === undefined) delete body[field];
          const client = clientAccepts(schema, body, field);
          const res = await send(form, body, field);
          const srv = serverAccepts(res, field);
          rows++;
          if (!c.why) (c.client ? valid++ : invalid++);
          if (client !== c.client || srv !== c.server) {
            failures.push(
              `${form.form}.${field} = ${show(c.value)}: expected client ${c.client ? "accepts" : "refuses"}, server ${c.server ? "accepts" : "refuses"}` +
                `${c.why ? ` (exception: ${c.why})` : ""}; got client ${client ? "accepts" : "refuses"}, server ${srv ? "accepts" : "refuses"} (${res.status} ${res.text.slice(0, 200)})`,
            );
          }
        }
      }
    }
  } finally {
    server.stop();
  }
  console.log(perField.join("\n"));
  console.log(
    `agreement table: ${FORMS.length} forms, ${perField.length} fields, ${rows} rows ` +
      `(${valid} valid and ${invalid} invalid values that must agree, ${EXCEPTIONS.length} listed exceptions)`,
  );
  if (failures.length) {
    console.error(`\n${failures.length} disagreement(s):\n${failures.join("\n")}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
