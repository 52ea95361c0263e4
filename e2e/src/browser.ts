// Debian's Chromium through playwright-core, as every browser check launches it: headless, a
// throw-away profile, and only loopback reachable (anything else fails the check).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium, type BrowserContext } from "playwright-core";

import { within } from "./server.js";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Whether `url` stays on this machine. */
export function isLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === "data:" || protocol === "blob:") return true;
  return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
}

/** A running browser with its own profile; `close` removes the profile. */
export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile; requests that leave loopback are aborted. */
export async function launch(executablePath: string, extraArgs: readonly string[] = []): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), "account-recovery-e2e-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 30_000,
    });
  } catch (e) {
    await rm(profile, { recursive: true, force: true });
    throw e;
  }
  await context.route("**/*", async (route) => {
    if (isLoopback(route.request().url())) await route.continue();
    else await route.abort("blockedbyclient");
  });
  return {
    context,
    close: async () => {
      // Closing the browser is bounded too; the process exit kills what is left.
      await within(context.close(), 15_000);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
