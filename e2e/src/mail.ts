// A real SMTP listener on loopback that keeps every mail the server sends, parsed, so the
// story can read the links in them. Plain SMTP, no TLS, no authentication: the server reaches
// it with SMTP_URL=smtp://127.0.0.1:PORT.

import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";

/** One received mail. */
export interface Mail {
  /** Envelope recipients, lower case. */
  readonly to: readonly string[];
  readonly subject: string;
  readonly text: string;
  readonly parsed: ParsedMail;
}

/** What to wait for. */
export interface MailQuery {
  to: string;
  subject: RegExp;
}

export class MailSink {
  private readonly mails: Mail[] = [];
  private readonly taken = new Set<Mail>();
  private waiters: Array<() => void> = [];
  private readonly server: SMTPServer;
  /** Errors while receiving (a mail that could not be parsed). */
  readonly errors: string[] = [];

  private constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["AUTH", "STARTTLS"],
      logger: false,
      size: 1024 * 1024,
      onData: (stream, session, callback) => {
        const to = session.envelope.rcptTo.map((a) => a.address.toLowerCase());
        simpleParser(stream)
          .then((parsed) => {
            this.mails.push({
              to,
              subject: parsed.subject ?? "",
              text: parsed.text ?? "",
              parsed,
            });
            const waiters = this.waiters;
            this.waiters = [];
            for (const w of waiters) w();
            callback();
          })
          .catch((e: unknown) => {
            this.errors.push(String(e));
            callback(e instanceof Error ? e : new Error(String(e)));
          });
      },
    });
  }

  /** Listens on 127.0.0.1 on a port the kernel picks. */
  static async start(): Promise<{ sink: MailSink; port: number }> {
    const sink = new MailSink();
    const port = await new Promise<number>((resolve, reject) => {
      sink.server.once("error", reject);
      sink.server.listen(0, "127.0.0.1", () => {
        const address = sink.server.server.address();
        if (address === null || typeof address === "string") {
          reject(new Error("the SMTP listener has no port"));
          return;
        }
        resolve(address.port);
      });
    });
    return { sink, port };
  }

  /** Every mail received so far. */
  all(): readonly Mail[] {
    return this.mails;
  }

  /**
   * The first mail not taken yet to `query.to` whose subject matches; waits for it at most
   * `timeoutMs` (the server sends mail from an outbox, shortly after the answer).
   */
  async take(query: MailQuery, timeoutMs = 15_000): Promise<Mail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.mails.find(
        (m) => !this.taken.has(m) && m.to.includes(query.to.toLowerCase()) && query.subject.test(m.subject),
      );
      if (found !== undefined) {
        this.taken.add(found);
        return found;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.mails.map((m) => `  to ${m.to.join(",")}: ${m.subject}`).join("\n");
        throw new Error(
          `no mail to ${query.to} with a subject like ${query.subject} within ${timeoutMs} ms; received:\n${seen || "  (none)"}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/**
 * The `token` of the first link in the mail's text to `{FRONTEND_URL}/<page>`, with the
 * link's other query parameters.
 */
export function linkIn(mail: Mail, page: string): URL {
  for (const match of mail.text.matchAll(/https?:\/\/[^\s<>"]+/g)) {
    const url = new URL(match[0]);
    if (url.pathname.replace(/\/+$/, "").endsWith(`/${page}`)) {
      return url;
    }
  }
  throw new Error(`no ${page} link in the mail "${mail.subject}":\n${mail.text}`);
}

/** The `token` query parameter of a link. */
export function tokenOf(url: URL): string {
  const token = url.searchParams.get("token");
  if (token === null || token.length < 16) {
    throw new Error(`the link ${url.pathname} has no token`);
  }
  return token;
}
