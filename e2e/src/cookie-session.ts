// Cookie sessions in a real browser (Debian's Chromium through playwright-core), from a page
// served on an origin in CORS_ALLOWED_ORIGINS (http://localhost:PAGE) calling the API on
// http://localhost:API with `credentials: "include"`: log in with "session_transport": "cookie"
// (no token in the body or in document.cookie, the cookies HttpOnly, Secure, SameSite=Strict),
// read the account, refresh through the cookie, log out (the cookies are gone). Then an
// attacker's page auto-submits a form post to the API: from another site (http://127.0.0.1)
// the browser sends no cookie (401), and from the same site but another origin
// (http://localhost:OTHER) the cookies go along but the CSRF token cannot (403 csrf_failed);
// the session lives on and nothing changed.
//
//   node build/src/cookie-session.js BINARY [CHROMIUM]      (CHROMIUM defaults to /usr/bin/chromium)

import { createServer, type Server as HttpServer } from "node:http";

import type { Page } from "playwright-core";

import { launch, type Browser } from "./browser.js";
import { assert, CheckFailed, eq, Steps } from "./check.js";
import { freePort, startServer, within, type Server } from "./server.js";

const USERNAME = "jbber";
const EMAIL = "jbber@example.test";
const PASSWORD = "orbit lantern mosaic 42";
const COOKIES = ["ar_access", "ar_refresh", "ar_csrf"] as const;

/** What a `fetch` from the page answered. */
interface Fetched {
  status: number;
  body: Record<string, unknown> | null;
  documentCookie: string;
}

/** Serves `pages` (path → HTML) on 127.0.0.1:`port`. */
function servePages(port: number, pages: (path: string) => string | undefined): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      const html = pages(new URL(req.url ?? "/", "http://x").pathname);
      if (html === undefined) {
        res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" }).end(html);
    });
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

function closeServer(server: HttpServer | undefined): Promise<void> {
  if (server === undefined) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

const FRONTEND_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>frontend</title></head>
<body><h1>A frontend on an allowed origin</h1></body></html>`;

/** A page that posts a form to `action` as soon as it loads (no script of the attacker's can
 *  set X-CSRF-Token on a form post, nor read the API's cookies). */
function attackPage(action: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>attacker</title></head>
<body><form id="f" method="POST" action="${action}"><input type="hidden" name="x" value="1"></form>
<script>document.getElementById("f").submit();</script></body></html>`;
}

/** Runs `fetch(api + path)` inside the page, with the browser's cookies. */
async function pageFetch(
  page: Page,
  api: string,
  method: string,
  path: string,
  options: { body?: unknown; csrf?: string } = {},
): Promise<Fetched> {
  return page.evaluate(
    async ({ url, method, body, csrf }) => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (csrf !== undefined) headers["X-CSRF-Token"] = csrf;
      const init: RequestInit = { method, credentials: "include", headers };
      if (body !== undefined) init.body = JSON.stringify(body);
      const res = await fetch(url, init);
      const text = await res.text();
      return {
        status: res.status,
        body: text === "" ? null : (JSON.parse(text) as Record<string, unknown>),
        documentCookie: document.cookie,
      };
    },
    { url: `${api}${path}`, method, body: options.body, csrf: options.csrf },
  );
}

function expectStatus(r: Fetched, status: number, what: string): Record<string, unknown> {
  if (r.status !== status) {
    throw new CheckFailed(`${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body ?? {};
}

function expectCode(r: Fetched, status: number, code: string, what: string): void {
  const body = expectStatus(r, status, what);
  eq(body["code"], code, `${what}: code`);
}

/** The API's session cookies as the browser holds them. */
async function sessionCookies(browser: Browser, api: string) {
  const all = await browser.context.cookies(api);
  return new Map(all.filter((c) => (COOKIES as readonly string[]).includes(c.name)).map((c) => [c.name, c]));
}

async function check(browser: Browser, server: Server, pagePort: number, otherPort: number, steps: Steps) {
  // The server listens on 127.0.0.1; the page and the API are both "localhost" here, which
  // makes them one site (ports do not count), as an app and its API on sibling hosts are.
  const api = server.base.replace("127.0.0.1", "localhost");
  const frontend = `http://localhost:${pagePort}`;
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.setDefaultTimeout(15_000);

  const registered = await fetch(`${server.base}/api/v1/accounts`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: USERNAME, email: EMAIL, password: PASSWORD }),
    signal: AbortSignal.timeout(15_000),
  });
  eq(registered.status, 201, "register (outside the browser)");

  const loaded = await page.goto(`${frontend}/`, { waitUntil: "load", timeout: 20_000 });
  eq(loaded?.status(), 200, `GET ${frontend}/`);

  // --- Log in in cookie mode.
  const login = await pageFetch(page, api, "POST", "/api/v1/sessions", {
    body: { login: USERNAME, password: PASSWORD, session_transport: "cookie" },
  });
  const session = expectStatus(login, 200, "cookie login");
  eq(session["status"], "authenticated", "cookie login: status");
  assert(!("access_token" in session) && !("refresh_token" in session), "cookie login: no token in the body");
  const csrf = session["csrf_token"];
  assert(typeof csrf === "string" && csrf.length >= 32, "cookie login: csrf_token in the body");
  let jar = await sessionCookies(browser, api);
  for (const name of COOKIES) {
    const c = jar.get(name);
    assert(c !== undefined, `the browser holds the ${name} cookie`);
    eq(c.secure, true, `${name}: Secure`);
    eq(c.sameSite, "Strict", `${name}: SameSite`);
    eq(c.path, "/", `${name}: Path`);
    eq(c.httpOnly, name !== "ar_csrf", `${name}: HttpOnly`);
  }
  eq(jar.get("ar_csrf")?.value, csrf, "the readable CSRF cookie holds the body's csrf_token");
  assert(
    login.documentCookie.includes(`ar_csrf=${csrf}`) &&
      !login.documentCookie.includes("ar_access") &&
      !login.documentCookie.includes("ar_refresh"),
    `document.cookie shows only the CSRF cookie (got "${login.documentCookie}")`,
  );
  steps.ok(
    `log in from ${frontend} with session_transport=cookie: 200, no token in the body or in document.cookie; ` +
      "ar_access and ar_refresh HttpOnly, all three Secure, SameSite=Strict, Path=/",
  );

  // --- Read the account with the cookie alone.
  const account = expectStatus(await pageFetch(page, api, "GET", "/api/v1/account"), 200, "read the account");
  eq(account["username"], USERNAME, "account: username");
  steps.ok("GET /api/v1/account with the cookie: 200, the account");

  // --- A write without the CSRF token is refused, even from the allowed page.
  expectCode(
    await pageFetch(page, api, "POST", "/api/v1/account/email-verification"),
    403,
    "csrf_failed",
    "a cookie write without X-CSRF-Token",
  );
  steps.ok("a cookie-authenticated POST without X-CSRF-Token: 403 csrf_failed");

  // --- Refresh through the cookie.
  const before = jar.get("ar_refresh")?.value;
  const refreshed = expectStatus(
    await pageFetch(page, api, "POST", "/api/v1/sessions/refresh", { body: {}, csrf }),
    200,
    "refresh through the cookie",
  );
  assert(!("access_token" in refreshed) && !("refresh_token" in refreshed), "refresh: no token in the body");
  jar = await sessionCookies(browser, api);
  assert(jar.get("ar_refresh")?.value !== before, "refresh: the refresh cookie was rotated");
  expectStatus(await pageFetch(page, api, "GET", "/api/v1/account"), 200, "read the account after the refresh");
  steps.ok("POST /api/v1/sessions/refresh with {} and X-CSRF-Token: 200, new cookies, the account still reads");

  // --- Log out: the cookies are cleared.
  expectStatus(
    await pageFetch(page, api, "DELETE", "/api/v1/sessions/current", { csrf }),
    204,
    "log out",
  );
  jar = await sessionCookies(browser, api);
  eq(jar.size, 0, "cookies left after logout");
  expectCode(await pageFetch(page, api, "GET", "/api/v1/account"), 401, "unauthorized", "the account after logout");
  steps.ok("DELETE /api/v1/sessions/current: 204, the browser holds no session cookie, the account answers 401");

  // --- An attacker's form posts, against a fresh session.
  const again = await pageFetch(page, api, "POST", "/api/v1/sessions", {
    body: { login: USERNAME, password: PASSWORD, session_transport: "cookie" },
  });
  expectStatus(again, 200, "log in again");
  const target = `${api}/api/v1/account/email-verification`;

  for (const [attacker, status, code, why] of [
    [`http://127.0.0.1:${otherPort}`, 401, "unauthorized", "another site: SameSite=Strict keeps the cookies home"],
    [`http://localhost:${otherPort}`, 403, "csrf_failed", "same site, other origin: the cookies go, the CSRF token cannot"],
  ] as const) {
    const answered = page.waitForResponse((r) => r.url() === target, { timeout: 15_000 });
    await page.goto(`${attacker}/attack`, { waitUntil: "commit", timeout: 20_000 });
    const response = await answered;
    const sentCookie = (await response.request().allHeaders())["cookie"] ?? "";
    eq(response.status(), status, `form post from ${attacker}: status`);
    const problem = (await response.json()) as Record<string, unknown>;
    eq(problem["code"], code, `form post from ${attacker}: code`);
    if (status === 401) {
      assert(!sentCookie.includes("ar_access"), `form post from ${attacker}: no session cookie was sent`);
    } else {
      assert(sentCookie.includes("ar_access"), `form post from ${attacker}: the session cookie was sent`);
    }
    steps.ok(`a form post to ${target.replace(api, "")} from ${attacker}: ${status} ${code} (${why})`);
  }

  // The session lives on, untouched.
  await page.goto(`${frontend}/`, { waitUntil: "load", timeout: 20_000 });
  const still = expectStatus(await pageFetch(page, api, "GET", "/api/v1/account"), 200, "the account after the attacks");
  eq(still["email_verified"], false, "account after the attacks: email_verified");
  steps.ok("after the refused form posts the session still reads the account from the allowed page");
}

async function main(): Promise<void> {
  const bin = process.argv[2];
  const executablePath = process.argv[3] ?? "/usr/bin/chromium";
  if (bin === undefined) {
    console.error("usage: node build/src/cookie-session.js BINARY [CHROMIUM]");
    process.exit(2);
  }
  const steps = new Steps();
  let server: Server | undefined;
  let browser: Browser | undefined;
  let frontendPages: HttpServer | undefined;
  let attackerPages: HttpServer | undefined;
  try {
    const pagePort = await freePort();
    const otherPort = await freePort();
    frontendPages = await servePages(pagePort, (path) => (path === "/" ? FRONTEND_PAGE : undefined));
    server = await startServer(bin, {
      MAIL_TRANSPORT: "log",
      CORS_ALLOWED_ORIGINS: `http://localhost:${pagePort}`,
    });
    const target = `${server.base.replace("127.0.0.1", "localhost")}/api/v1/account/email-verification`;
    attackerPages = await servePages(otherPort, (path) => (path === "/attack" ? attackPage(target) : undefined));
    console.log(`server at ${server.base}, frontend page on http://localhost:${pagePort}`);
    // "localhost" resolves to 127.0.0.1 (where everything listens) without trying ::1 first.
    browser = await launch(executablePath, ["--host-resolver-rules=MAP localhost 127.0.0.1"]);
    await check(browser, server, pagePort, otherPort, steps);
  } catch (e) {
    console.error(`not ok ${steps.count + 1} - ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof CheckFailed) && e instanceof Error && e.stack !== undefined) console.error(e.stack);
    if (server !== undefined) console.error(`--- server log (last lines)\n${server.logTail(30)}`);
    console.log(`cookie-session: ${steps.count} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    await browser?.close();
    await within(Promise.all([closeServer(frontendPages), closeServer(attackerPages)]), 5_000);
    await server?.stop();
  }
  if (process.exitCode === 1) process.exit(1);
  console.log(`cookie-session: ${steps.count} passed, 0 failed`);
}

await main();
