// Starts the account-recovery binary on a free loopback port with a temporary SQLite database,
// and stops it again. Every wait is bounded; the process is killed when this one exits.

import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** A running server. */
export interface Server {
  /** `http://127.0.0.1:PORT`. */
  readonly base: string;
  /** The environment it runs with (the command line needs the same). */
  readonly env: Readonly<Record<string, string>>;
  /** The binary. */
  readonly bin: string;
  /** Its working directory (temporary, holds the database and the log). */
  readonly dir: string;
  /** The last lines of its log. */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after 10 s; removes the temporary folder. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the kernel's choice, released at once). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      if (address === null || typeof address === "string") {
        s.close();
        reject(new Error("no port"));
        return;
      }
      const port = address.port;
      s.close(() => resolvePort(port));
    });
  });
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits for `p` at most `ms` milliseconds: true when it settled, false on time-out. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
    }
  }
}

// A server must not outlive the check, whatever ends it.
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Starts `bin serve` and waits (at most 30 s) until `/health/ready` answers 200. */
export async function startServer(binPath: string, extraEnv: Record<string, string>): Promise<Server> {
  const bin = resolve(binPath);
  const work = await mkdtemp(join(tmpdir(), "account-recovery-e2e-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Like `env -i`: nothing from the caller's environment (or a .env file: the working
  // directory is the temporary folder) changes the server.
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    APP_ENV: "development",
    DATABASE_URL: join(work, "e2e.db"),
    BIND_ADDR: `127.0.0.1:${port}`,
    METRICS_BIND_ADDR: "off",
    WORKERS: "2",
    JWT_SECRET: "e2e-jwt-secret-0123456789abcdef0123456789",
    DATA_ENCRYPTION_KEY: "e2e-data-key-0123456789abcdef0123456789",
    ARGON2_MEMORY_KIB: "64",
    ARGON2_ITERATIONS: "1",
    RUST_LOG: "info",
    ...extraEnv,
  };
  const logPath = join(work, "server.log");
  const log = createWriteStream(logPath);
  const child = spawn(bin, ["serve"], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.once("error", (e) => log.write(`spawn failed: ${e.message}\n`));

  const logTail = (lines = 40): string => {
    try {
      return readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      if (!(await within(exited, 10_000))) {
        child.kill("SIGKILL");
        await within(exited, 5_000);
      }
    }
    children.delete(child);
    log.end();
    await rm(work, { recursive: true, force: true });
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = logTail();
      await stop();
      throw new Error(`the server exited before it was ready:\n${tail}`);
    }
    try {
      const r = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(2_000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const tail = logTail();
      await stop();
      throw new Error(`the server was not ready within 30 s:\n${tail}`);
    }
    await delay(200);
  }
  return { base, env, bin, dir: work, logTail, stop };
}

/** Runs the binary once with the server's environment; `stdin` is written and closed. */
export function runCli(
  server: Server,
  args: readonly string[],
  stdin: string,
  timeoutMs = 30_000,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(server.bin, args, { cwd: server.dir, env: server.env, stdio: ["pipe", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")}: no exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("exit", (status) => {
      clearTimeout(timer);
      children.delete(child);
      resolveRun({ status, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}
