// Swagger UI in a real browser (Debian's Chromium through playwright-core): the page loads
// without a console error, page error or failed request, lists every operation of
// openapi/openapi.json, "Try it out" → "Execute" on GET /health/live shows a 200, and a
// requester uploads a PDF to a recovery request that waits for their answer (multipart form
// with a file picker) and sees 201.
//
//   node build/src/swagger-ui.js BINARY [CHROMIUM]      (CHROMIUM defaults to /usr/bin/chromium)

import { readFile } from "node:fs/promises";

import type { Page } from "playwright-core";

import { launch, type Browser } from "./browser.js";
import { assert, CheckFailed, eq, Steps } from "./check.js";
import { runCli, startServer, type Server } from "./server.js";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** `METHOD path` of every operation in the committed document. */
async function documentedOperations(): Promise<string[]> {
  // This file runs as e2e/build/src/swagger-ui.js.
  const raw = await readFile(new URL("../../../openapi/openapi.json", import.meta.url), "utf8");
  const doc = JSON.parse(raw) as { paths?: Record<string, Record<string, unknown>> };
  const operations: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (item[method] !== undefined) operations.push(`${method.toUpperCase()} ${path}`);
    }
  }
  return operations.sort();
}

async function check(page: Page, server: Server, steps: Steps): Promise<number> {
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText ?? "?"})`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  const noProblems = (when: string): void => {
    if (problems.length > 0) throw new CheckFailed(`${when}:\n  ${problems.join("\n  ")}`);
  };

  const documented = await documentedOperations();

  const answer = await page.goto(`${server.base}/swagger-ui/`, { waitUntil: "load", timeout: 20_000 });
  eq(answer?.status(), 200, "GET /swagger-ui/ status");
  await page.locator(".opblock").first().waitFor({ state: "attached", timeout: 20_000 });
  await page.waitForLoadState("networkidle", { timeout: 20_000 });
  const title = (await page.locator(".information-container .title").first().textContent({ timeout: 5_000 })) ?? "";
  assert(title.includes("account-recovery"), `the page shows the document's title (got "${title}")`);
  noProblems("loading Swagger UI");
  steps.ok("Swagger UI loads with no console error, page error or failed request");

  const listed = await page.locator(".opblock").evaluateAll((blocks) =>
    blocks.map((b) => {
      const method = b.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "?";
      const pathElement = b.querySelector(".opblock-summary-path");
      const path = pathElement?.getAttribute("data-path") ?? pathElement?.textContent?.trim() ?? "?";
      return `${method.toUpperCase()} ${path.replace(/\u200b/g, "")}`;
    }),
  );
  listed.sort();
  const missing = documented.filter((op) => !listed.includes(op));
  const extra = listed.filter((op) => !documented.includes(op));
  assert(
    missing.length === 0 && extra.length === 0,
    `operations differ: missing from the page [${missing.join(", ")}], not in the document [${extra.join(", ")}]`,
  );
  eq(listed.length, documented.length, ".opblock elements against operations in openapi.json");
  steps.ok(`the page lists all ${listed.length} operations of openapi.json (method and path each)`);

  const live = page.locator(".opblock").filter({ has: page.locator('.opblock-summary-path[data-path="/health/live"]') });
  eq(await live.count(), 1, "operation blocks for /health/live");
  await live.locator(".opblock-summary").first().click({ timeout: 10_000 });
  await live.getByRole("button", { name: "Try it out" }).click({ timeout: 10_000 });
  const executed = page.waitForResponse((r) => r.url() === `${server.base}/health/live`, { timeout: 15_000 });
  await live.getByRole("button", { name: "Execute" }).click({ timeout: 10_000 });
  eq((await executed).status(), 200, "the browser's GET /health/live");
  const shown = live.locator(".live-responses-table .response .response-col_status").first();
  await shown.waitFor({ state: "visible", timeout: 15_000 });
  eq(((await shown.textContent()) ?? "").trim(), "200", "the status Swagger UI shows for GET /health/live");
  noProblems("trying GET /health/live");
  steps.ok('GET /health/live: "Try it out" → "Execute" shows 200');

  const { id, token } = await requestWaitingForAnswer(server);
  steps.ok("a recovery request waits for its requester's answer (support asked for a document)");
  const path = "/api/v1/recovery-requests/{id}/attachments";
  const upload = page
    .locator(".opblock.opblock-post")
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
  eq(await upload.count(), 1, `operation blocks for POST ${path}`);
  await upload.locator(".opblock-summary").first().click({ timeout: 10_000 });
  await upload.getByRole("button", { name: "Try it out" }).click({ timeout: 10_000 });
  await upload.locator('tr[data-param-name="id"] input').fill(id);
  await upload.locator('tr[data-param-name="X-Tracking-Token"] input').fill(token);
  await upload.locator('input[type="file"]').setInputFiles({
    name: "passport-scan.pdf",
    mimeType: "application/pdf",
    buffer: Buffer.from("%PDF-1.4\n1 0 obj\n<< /Title (e2e) >>\nendobj\ntrailer\n%%EOF\n"),
  });
  const uploaded = page.waitForResponse(
    (r) => r.url() === `${server.base}/api/v1/recovery-requests/${id}/attachments` && r.request().method() === "POST",
    { timeout: 15_000 },
  );
  await upload.getByRole("button", { name: "Execute" }).click({ timeout: 10_000 });
  const answer201 = await uploaded;
  eq(answer201.status(), 201, "the browser's upload");
  const body = (await answer201.json()) as { filename?: string; content_type?: string };
  eq(body.content_type, "application/pdf", "the attachment's content type");
  eq(body.filename, "passport-scan.pdf", "the attachment's filename");
  const shownUpload = upload.locator(".live-responses-table .response .response-col_status").first();
  await shownUpload.waitFor({ state: "visible", timeout: 15_000 });
  eq(((await shownUpload.textContent()) ?? "").trim(), "201", `the status Swagger UI shows for POST ${path}`);
  noProblems("uploading a document");
  steps.ok(`POST ${path}: a PDF chosen in the file picker is uploaded, 201`);
  return listed.length;
}

const SUPPORT = { username: "support-sue", email: "sue@support.example.test", password: "Violet-Harbour-Lantern-93" };

async function call(server: Server, method: string, path: string, body: unknown, bearer?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (bearer !== undefined) headers.Authorization = `Bearer ${bearer}`;
  const res = await fetch(`${server.base}${path}`, { method, headers, body: JSON.stringify(body) });
  const text = await res.text();
  assert(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Files a recovery request and has support ask a question: the request is `needs_info`. */
async function requestWaitingForAnswer(server: Server): Promise<{ id: string; token: string }> {
  const filed = await call(server, "POST", "/api/v1/recovery-requests", {
    username: "ghost-owner",
    contact_email: "ghost.owner@contact.example.test",
    reason: "I lost my phone with the authenticator and never saved the recovery codes.",
    recovery_codes_lost: true,
    code_of_conduct_accepted: true,
    processing_time_acknowledged: true,
  });
  const created = await runCli(
    server,
    ["support-user", "create", "--username", SUPPORT.username, "--email", SUPPORT.email, "--password-stdin"],
    `${SUPPORT.password}\n`,
  );
  eq(created.status, 0, `support-user create (stderr: ${created.stderr.trim()})`);
  const login = await call(server, "POST", "/api/v1/sessions", { login: SUPPORT.username, password: SUPPORT.password });
  const access = login.access_token;
  assert(typeof access === "string", `support login: ${JSON.stringify(login)}`);
  const id = String(filed.id);
  await call(
    server,
    "POST",
    `/api/v1/admin/recovery-requests/${id}/messages`,
    { body: "Please attach a scan of an identity document." },
    access,
  );
  return { id, token: String(filed.tracking_token) };
}

async function main(): Promise<void> {
  const bin = process.argv[2];
  const executablePath = process.argv[3] ?? "/usr/bin/chromium";
  if (bin === undefined) {
    console.error("usage: node build/src/swagger-ui.js BINARY [CHROMIUM]");
    process.exit(2);
  }
  const steps = new Steps();
  let server: Server | undefined;
  let browser: Browser | undefined;
  let operations = 0;
  try {
    server = await startServer(bin, { MAIL_TRANSPORT: "log", RECOVERY_ATTACHMENTS: "on" });
    console.log(`server at ${server.base}`);
    browser = await launch(executablePath);
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(15_000);
    operations = await check(page, server, steps);
  } catch (e) {
    console.error(`not ok ${steps.count + 1} - ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof CheckFailed) && e instanceof Error && e.stack !== undefined) console.error(e.stack);
    if (server !== undefined) console.error(`--- server log (last lines)\n${server.logTail(30)}`);
    console.log(`swagger-ui: ${steps.count} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    await browser?.close();
    await server?.stop();
  }
  if (process.exitCode === 1) process.exit(1);
  console.log(`swagger-ui: ${operations} operations listed`);
  console.log(`swagger-ui: ${steps.count} passed, 0 failed`);
}

await main();
