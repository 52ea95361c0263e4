// The "jbber" story, through the running server, with the client generated from
// openapi/openapi.json (openapi-typescript types, openapi-fetch calls):
// register, verify the email, log in, turn on TOTP, get and regenerate recovery codes, log in
// with a recovery code, then lose everything, file a recovery request, have support approve
// it, complete it from the mailed link and log in with the new password.
//
//   node build/src/story.js BINARY

import createClient from "openapi-fetch";
import * as OTPAuth from "otpauth";

import type { components, paths } from "../generated/api.js";
import { assert, CheckFailed, eq, expectData, expectEmpty, expectProblem, Steps } from "./check.js";
import { linkIn, MailSink, tokenOf } from "./mail.js";
import { runCli, startServer, type Server } from "./server.js";

type Schemas = components["schemas"];

const USERNAME = "jbber";
const EMAIL = "jbber@example.test";
const CONTACT_EMAIL = "jbber.again@example.test";
const PASSWORD = "orbit lantern mosaic 42";
const NEW_PASSWORD = "quiet harbour violet 97";
const SUPPORT_USERNAME = "support-ann";
const SUPPORT_EMAIL = "ann@support.example.test";
const SUPPORT_PASSWORD = "copper meadow signal 58";

function apiClient(server: Server, accessToken?: string) {
  return createClient<paths>({
    baseUrl: server.base,
    headers: accessToken === undefined ? {} : { Authorization: `Bearer ${accessToken}` },
    // A hung request fails the step instead of the whole run's timeout.
    fetch: (request: Request) => fetch(request, { signal: AbortSignal.timeout(15_000) }),
  });
}

/** An answer that opened a bearer-mode session: its tokens are in the body. */
type BearerSession = Schemas["AuthenticatedResponse"] & { access_token: string; refresh_token: string };

/** The password step answered "authenticated" (bearer mode): the tokens. */
function authenticated(
  login: Schemas["LoginResponse"] | Schemas["SecondStepResponse"],
  what: string,
): BearerSession {
  if (login.status !== "authenticated") {
    throw new CheckFailed(`${what}: expected status authenticated, got ${login.status}`);
  }
  eq(login.token_type, "Bearer", `${what}: token_type`);
  const { access_token, refresh_token } = login;
  // Absent only in cookie mode, which this story does not ask for.
  assert(
    access_token !== undefined && refresh_token !== undefined && access_token.length > 20 && refresh_token.length > 20,
    `${what}: tokens are present`,
  );
  assert(login.expires_in > 0, `${what}: expires_in is positive`);
  return { ...login, access_token, refresh_token };
}

async function story(bin: string, steps: Steps): Promise<void> {
  const { sink, port: smtpPort } = await MailSink.start();
  let server: Server | undefined;
  try {
    server = await startServer(bin, {
      MAIL_TRANSPORT: "smtp",
      SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      FRONTEND_URL: "http://localhost:3000",
    });
    console.log(`server at ${server.base}, SMTP listener on 127.0.0.1:${smtpPort}`);
    await run(server, sink, steps);
    assert(sink.errors.length === 0, `the SMTP listener failed on a mail: ${sink.errors.join("; ")}`);
  } catch (e) {
    if (server !== undefined) {
      console.error(`--- server log (last lines)\n${server.logTail(60)}`);
    }
    throw e;
  } finally {
    await server?.stop();
    await sink.close();
  }
}

async function run(server: Server, sink: MailSink, steps: Steps): Promise<void> {
  const anonymous = apiClient(server);

  // --- Register and verify the email.
  const registered = expectData(
    await anonymous.POST("/api/v1/accounts", { body: { username: USERNAME, email: EMAIL, password: PASSWORD } }),
    201,
    "register",
  );
  eq(registered.username, USERNAME, "register: username");
  eq(registered.email, EMAIL, "register: email");
  eq(registered.email_verified, false, "register: email_verified");
  eq(registered.role, "user", "register: role");
  eq(registered.two_factor_enabled, false, "register: two_factor_enabled");
  steps.ok(`register ${USERNAME}: 201, email not verified yet`);

  const verifyMail = await sink.take({ to: EMAIL, subject: /confirm your email/i });
  const verified = expectData(
    await anonymous.POST("/api/v1/accounts/verify-email", {
      body: { token: tokenOf(linkIn(verifyMail, "verify-email")) },
    }),
    200,
    "verify email",
  );
  eq(verified.id, registered.id, "verify email: account id");
  eq(verified.email_verified, true, "verify email: email_verified");
  steps.ok("verify the email with the token from the verification mail: 200, email_verified");

  // --- Log in (no second factor yet).
  const firstLogin = authenticated(
    expectData(await anonymous.POST("/api/v1/sessions", { body: { login: USERNAME, password: PASSWORD } }), 200, "login"),
    "login",
  );
  const user = apiClient(server, firstLogin.access_token);
  const me = expectData(await user.GET("/api/v1/account"), 200, "account");
  eq(me.username, USERNAME, "account: username");
  eq(me.two_factor_enabled, false, "account: two_factor_enabled");
  steps.ok("log in with the password: authenticated, GET /account is jbber");

  // --- Turn on TOTP; the first code confirms it and answers the first recovery codes.
  const enrollment = expectData(
    await user.POST("/api/v1/account/totp", { body: { password: PASSWORD } }),
    201,
    "start TOTP enrollment",
  );
  const otp = OTPAuth.URI.parse(enrollment.otpauth_uri);
  assert(otp instanceof OTPAuth.TOTP, "otpauth_uri is a TOTP URI");
  eq(otp.secret.base32.replace(/=+$/, ""), enrollment.secret.replace(/=+$/, "").toUpperCase(), "otpauth_uri secret");
  eq(otp.algorithm, "SHA1", "TOTP algorithm");
  eq(otp.digits, 6, "TOTP digits");
  eq(otp.period, 30, "TOTP period");
  steps.ok("start TOTP enrollment: 201 with the secret and an otpauth:// URI (SHA1, 6 digits, 30 s)");

  const firstSet = expectData(
    await user.POST("/api/v1/account/totp/confirm", { body: { code: otp.generate() } }),
    200,
    "confirm TOTP",
  );
  eq(firstSet.recovery_codes.length, 8, "confirm TOTP: recovery codes in the first set");
  for (const code of firstSet.recovery_codes) {
    assert(/^[0-9a-z]{4}(-[0-9a-z]{4}){4}$/.test(code), `recovery code shape: ${code}`);
  }
  const after2fa = expectData(await user.GET("/api/v1/account"), 200, "account after TOTP");
  eq(after2fa.two_factor_enabled, true, "account: two_factor_enabled");
  eq(after2fa.recovery_codes_remaining, 8, "account: recovery_codes_remaining");
  steps.ok("confirm TOTP with a computed code: 200, 8 recovery codes, two_factor_enabled");

  // --- Regenerate the recovery codes: a new set, the old one superseded.
  const secondSet = expectData(
    await user.POST("/api/v1/account/recovery-codes", { body: { password: PASSWORD } }),
    201,
    "regenerate recovery codes",
  );
  eq(secondSet.recovery_codes.length, 8, "regenerate: codes in the new set");
  assert(
    secondSet.recovery_codes.every((c) => !firstSet.recovery_codes.includes(c)),
    "regenerate: the new set shares no code with the first",
  );
  steps.ok("regenerate the recovery codes: 201, a new set of 8");

  // --- Log in with the password (mfa_required), finish with a recovery code.
  const mfa = expectData(
    await anonymous.POST("/api/v1/sessions", { body: { login: EMAIL, password: PASSWORD } }),
    200,
    "login with 2FA",
  );
  if (mfa.status !== "mfa_required") {
    throw new CheckFailed(`login with 2FA: expected mfa_required, got ${mfa.status}`);
  }
  assert(mfa.methods.includes("recovery_code") && mfa.methods.includes("totp"), "mfa methods: totp and recovery_code");
  const oldCode = firstSet.recovery_codes[0];
  const newCode = secondSet.recovery_codes[0];
  assert(oldCode !== undefined && newCode !== undefined, "codes in both sets");
  expectProblem(
    await anonymous.POST("/api/v1/sessions/recovery-code", { body: { mfa_token: mfa.mfa_token, code: oldCode } }),
    401,
    "recovery_code_superseded",
    "a code of the replaced set",
  );
  // The browser keeps the device token of its first login and sends it back: a recovery-code
  // login from a device the account knows is not held for email confirmation.
  const deviceToken = firstLogin.device_token;
  if (deviceToken == null || deviceToken.length <= 20) {
    throw new CheckFailed("first login: expected a device token");
  }
  const viaCode = authenticated(
    expectData(
      await anonymous.POST("/api/v1/sessions/recovery-code", {
        params: { header: { "X-Device-Token": deviceToken } },
        // Input is normalised: upper case and spaces for dashes still match.
        body: { mfa_token: mfa.mfa_token, code: newCode.toUpperCase().replaceAll("-", " ") },
      }),
      200,
      "login with a recovery code",
    ),
    "recovery-code login",
  );
  eq(viaCode.device_token, undefined, "recovery-code login from a known device: no new device token");
  eq(viaCode.recovery_codes_remaining, 7, "recovery-code login: recovery_codes_remaining");
  const codeUser = apiClient(server, viaCode.access_token);
  const codesStatus = expectData(await codeUser.GET("/api/v1/account/recovery-codes"), 200, "recovery codes status");
  eq(codesStatus.total, 8, "recovery codes status: total");
  eq(codesStatus.remaining, 7, "recovery codes status: remaining");
  eq(codesStatus.used.length, 1, "recovery codes status: used");
  expectProblem(
    await anonymous.POST("/api/v1/sessions/recovery-code", { body: { mfa_token: mfa.mfa_token, code: newCode } }),
    401,
    "mfa_token_invalid",
    "the mfa token a second time",
  );
  steps.ok("log in: mfa_required; an old-set code is recovery_code_superseded; a new one logs in, 7 remain");

  // --- Locked out: file a recovery request, follow it with the tracking token.
  const submitted = expectData(
    await anonymous.POST("/api/v1/recovery-requests", {
      body: {
        username: USERNAME,
        contact_email: CONTACT_EMAIL,
        reason: "I lost my phone with the authenticator app and my saved recovery codes with it.",
        recovery_codes_lost: true,
        code_of_conduct_accepted: true,
        processing_time_acknowledged: true,
      },
    }),
    202,
    "submit a recovery request",
  );
  eq(submitted.status, "submitted", "submitted request: status");
  const trackingMail = await sink.take({ to: CONTACT_EMAIL, subject: /recovery request/i });
  const trackingLink = linkIn(trackingMail, "recovery/status");
  eq(trackingLink.searchParams.get("id"), submitted.id, "tracking link: id");
  eq(trackingLink.searchParams.get("token"), submitted.tracking_token, "tracking link: token");
  steps.ok("file a recovery request: 202 submitted; the tracking link is mailed to the contact address");

  const tracked = expectData(
    await anonymous.GET("/api/v1/recovery-requests/{id}", {
      params: { path: { id: submitted.id }, header: { "X-Tracking-Token": submitted.tracking_token } },
    }),
    200,
    "request status",
  );
  eq(tracked.id, submitted.id, "request status: id");
  eq(tracked.status, "submitted", "request status: status");
  assert(tracked.next_step.length > 0, "request status: next_step");
  expectProblem(
    await anonymous.GET("/api/v1/recovery-requests/{id}", {
      params: { path: { id: submitted.id }, header: { "X-Tracking-Token": "not-the-token-0123456789" } },
    }),
    404,
    "not_found",
    "request status with a wrong token",
  );
  steps.ok("read the request with the tracking token: submitted (a wrong token is a 404)");

  // The account's verified address is asked whether it was the owner; it was.
  const ownershipMail = await sink.take({ to: EMAIL, subject: /did you ask to recover/i });
  const ownership = expectData(
    await anonymous.POST("/api/v1/recovery-requests/verify-email", {
      body: { token: tokenOf(linkIn(ownershipMail, "recovery/verify")), confirm: true },
    }),
    200,
    "answer the ownership mail",
  );
  eq(ownership.ownership, "proven", "ownership");
  steps.ok("answer the ownership mail at the account's address with confirm=true: proven");

  // --- Support reviews and approves.
  const created = await runCli(
    server,
    ["support-user", "create", "--username", SUPPORT_USERNAME, "--email", SUPPORT_EMAIL, "--password-stdin"],
    `${SUPPORT_PASSWORD}\n`,
  );
  eq(created.status, 0, `support-user create (stderr: ${created.stderr.trim()})`);
  const supportLogin = authenticated(
    expectData(
      await anonymous.POST("/api/v1/sessions", { body: { login: SUPPORT_USERNAME, password: SUPPORT_PASSWORD } }),
      200,
      "support login",
    ),
    "support login",
  );
  const support = apiClient(server, supportLogin.access_token);
  const supportMe = expectData(await support.GET("/api/v1/account"), 200, "support account");
  eq(supportMe.role, "support", "support account: role");
  eq(supportMe.email_verified, true, "support account: email_verified");
  expectProblem(await codeUser.GET("/api/v1/admin/recovery-requests"), 403, "forbidden", "the queue for a user");
  steps.ok("support user made with `support-user create` logs in with role support (a user gets 403)");

  const queue = expectData(
    await support.GET("/api/v1/admin/recovery-requests", { params: { query: { username: USERNAME } } }),
    200,
    "queue",
  );
  eq(queue.total, 1, "queue: total");
  const queued = queue.items[0];
  assert(queued !== undefined, "queue: one item");
  eq(queued.id, submitted.id, "queue item: id");
  eq(queued.username, USERNAME, "queue item: username");
  eq(queued.status, "submitted", "queue item: status");
  eq(queued.account_exists, true, "queue item: account_exists");
  assert(queued.age_seconds >= 0, "queue item: age_seconds");
  steps.ok("support lists the queue: jbber's request, submitted");

  const detail = expectData(
    await support.GET("/api/v1/admin/recovery-requests/{id}", { params: { path: { id: submitted.id } } }),
    200,
    "request detail",
  );
  eq(detail.request.id, submitted.id, "detail: id");
  eq(detail.evidence.exists, true, "evidence: exists");
  eq(detail.evidence.account_id, registered.id, "evidence: account_id");
  eq(detail.evidence.email_verified, true, "evidence: email_verified");
  eq(detail.evidence.two_factor_enabled, true, "evidence: two_factor_enabled");
  eq(detail.evidence.recovery_codes.total, 8, "evidence: recovery codes total");
  eq(detail.evidence.recovery_codes.remaining, 7, "evidence: recovery codes remaining");
  eq(detail.evidence.ownership, "proven", "evidence: ownership");
  assert(
    detail.timeline.some((e) => e.type === "recovery_request.ownership_proven"),
    "timeline: recovery_request.ownership_proven",
  );
  steps.ok("support opens the request: account exists, 2FA on, 7 of 8 codes left, ownership proven");

  const approved = expectData(
    await support.POST("/api/v1/admin/recovery-requests/{id}/approve", {
      params: { path: { id: submitted.id } },
      body: { comment: "Owner confirmed through the account's address.", deliver_to: "account_email" },
    }),
    200,
    "approve",
  );
  eq(approved.request.status, "approved", "approved: status");
  steps.ok("support approves, deliver_to account_email: approved");

  // --- The owner completes with the mailed link and logs in with the new password.
  const completionMail = await sink.take({ to: EMAIL, subject: /^recover your/i });
  const completed = expectData(
    await anonymous.POST("/api/v1/account-recovery/complete", {
      body: { token: tokenOf(linkIn(completionMail, "recovery/complete")), new_password: NEW_PASSWORD },
    }),
    200,
    "complete the recovery",
  );
  eq(completed.status, "completed", "completed: status");
  eq(completed.username, USERNAME, "completed: username");
  const closed = expectData(
    await anonymous.GET("/api/v1/recovery-requests/{id}", {
      params: { path: { id: submitted.id }, header: { "X-Tracking-Token": submitted.tracking_token } },
    }),
    200,
    "request status after completion",
  );
  eq(closed.status, "completed", "request status after completion");
  expectProblem(await codeUser.GET("/api/v1/account"), 401, "unauthorized", "a session from before the recovery");
  steps.ok("complete with the link from the mail and a new password: 200 completed, old sessions revoked");

  expectProblem(
    await anonymous.POST("/api/v1/sessions", { body: { login: USERNAME, password: PASSWORD } }),
    401,
    "invalid_credentials",
    "login with the old password",
  );
  const recovered = authenticated(
    expectData(
      await anonymous.POST("/api/v1/sessions", { body: { login: USERNAME, password: NEW_PASSWORD } }),
      200,
      "login with the new password",
    ),
    "login with the new password",
  );
  const back = expectData(
    await apiClient(server, recovered.access_token).GET("/api/v1/account"),
    200,
    "account after recovery",
  );
  eq(back.username, USERNAME, "account after recovery: username");
  eq(back.two_factor_enabled, false, "account after recovery: two_factor_enabled");
  steps.ok("log in with the new password: authenticated, no second factor (old password refused)");
}

async function main(): Promise<void> {
  const bin = process.argv[2];
  if (bin === undefined) {
    console.error("usage: node build/src/story.js BINARY");
    process.exit(2);
  }
  const steps = new Steps();
  const started = Date.now();
  try {
    await story(bin, steps);
  } catch (e) {
    console.error(`not ok ${steps.count + 1} - ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof CheckFailed) && e instanceof Error && e.stack !== undefined) console.error(e.stack);
    console.log(`story: ${steps.count} passed, 1 failed`);
    process.exit(1);
  }
  console.log(`story took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`story: ${steps.count} passed, 0 failed`);
}

await main();
