//! A real SMTP listener on loopback: speaks enough SMTP for lettre, keeps every message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The raw message as received (headers and MIME body).
    pub raw: String,
}

impl Mail {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The subject line.
    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The plain-text part, decoded (quoted-printable or base64).
    pub fn text(&self) -> String {
        self.part("text/plain")
    }

    /// The HTML part, decoded.
    pub fn html(&self) -> String {
        self.part("text/html")
    }

    fn part(&self, content_type: &str) -> String {
        let boundary = self.header("Content-Type").and_then(|ct| {
            ct.split("boundary=")
                .nth(1)
                .map(|b| b.trim_matches('"').to_string())
        });
        let parts: Vec<&str> = match &boundary {
            Some(b) => self.raw.split(&format!("--{b}")).skip(1).collect(),
            None => vec![self.raw.as_str()],
        };
        let mut out = String::new();
        for part in parts {
            let Some((head, body)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let head = head.to_ascii_lowercase();
            let is_type = head
                .split("content-type:")
                .nth(1)
                .is_some_and(|t| t.trim_start().starts_with(content_type));
            if !is_type && boundary.is_some() {
                continue;
            }
            if head.contains("content-transfer-encoding: quoted-printable") {
                out.push_str(&decode_qp(body));
            } else if head.contains("content-transfer-encoding: base64") {
                let joined: String = body.split_whitespace().collect();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(joined) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            } else {
                out.push_str(body);
            }
        }
        out
    }

    /// The first link in the mail whose path ends with `page`, e.g. `reset-password`.
    pub fn link(&self, page: &str) -> Option<String> {
        let text = self.text();
        text.split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .find(|w| {
                w.starts_with("http") && w.split('?').next().is_some_and(|p| p.ends_with(page))
            })
            .map(|s| s.trim_end_matches(['.', ',', ')']).replace("&amp;", "&"))
    }

    /// A query parameter of the first link to `page`.
    pub fn link_param(&self, page: &str, name: &str) -> Option<String> {
        let link = self.link(page)?;
        let url = url::Url::parse(&link).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn decode_qp(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(v) = joined
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<Mail>>,
    arrived: Notify,
    /// While true, a message is held before its `250` (the sender waits in mid-delivery).
    hold: Mutex<bool>,
    released: Notify,
    /// While true, connections are closed at once (see [`SmtpSink::stop`]).
    down: Mutex<bool>,
    /// Messages held so far.
    held: Mutex<usize>,
    parked: Notify,
    /// Recipients refused at `RCPT TO`: the answer line and how many more times (`None`:
    /// always).
    refusals: Mutex<Vec<(String, String, Option<usize>)>>,
}

/// The listener. Dropping it stops accepting.
pub struct SmtpSink {
    port: u16,
    inbox: Arc<Inbox>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Starts listening on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let inbox = Arc::new(Inbox::default());
        let task = tokio::spawn(serve(listener, inbox.clone()));
        Self {
            port,
            inbox,
            task: Mutex::new(Some(task)),
        }
    }

    /// The port the app is configured with.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Goes down: every connection, new or open, is closed without an answer until
    /// [`SmtpSink::resume`]. The port stays bound, so no other test's listener can take it
    /// meanwhile (the app would then talk SMTP to a stranger and wait for its timeout).
    pub fn stop(&self) {
        *self.inbox.down.lock().expect("lock") = true;
    }

    /// Answers again.
    pub async fn resume(&self) {
        *self.inbox.down.lock().expect("lock") = false;
    }

    /// From now on, keeps each message's sender waiting for the final `250` until
    /// [`SmtpSink::release`]: a delivery caught in the middle.
    pub fn hold(&self) {
        *self.inbox.hold.lock().expect("lock") = true;
    }

    /// Waits (at most 10 s) until `count` messages are held in mid-delivery.
    pub async fn wait_until_holding(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let parked = self.inbox.parked.notified();
            if *self.inbox.held.lock().expect("lock") >= count {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, parked).await.is_ok(),
                "no delivery reached the held point"
            );
        }
    }

    /// Lets held deliveries finish, and stops holding.
    pub fn release(&self) {
        *self.inbox.hold.lock().expect("lock") = false;
        self.inbox.released.notify_waiters();
    }

    /// Answers `RCPT TO` for `address` with `answer` (a whole SMTP reply line such as
    /// `550 5.1.1 mailbox unavailable`) the next `times` times, or always with `None`; then
    /// accepts it again.
    pub fn refuse(&self, address: &str, answer: &str, times: Option<usize>) {
        self.inbox.refusals.lock().expect("lock").push((
            address.to_lowercase(),
            answer.to_string(),
            times,
        ));
    }

    /// Every message received so far.
    pub fn all(&self) -> Vec<Mail> {
        self.inbox.mails.lock().expect("lock").clone()
    }

    /// Messages received so far for `to`.
    pub fn to(&self, to: &str) -> Vec<Mail> {
        let to = to.to_lowercase();
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|r| r.to_lowercase() == to))
            .collect()
    }

    /// Waits (at most 10 s) until `to` has received `count` messages, and returns them.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.inbox.arrived.notified();
            let got = self.to(to);
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {count} mail(s) to {to}, got {}: {:?}",
                    got.len(),
                    got.iter().map(Mail::subject).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits for the next message to `to` whose subject contains `subject`.
    pub async fn wait_for_subject(&self, to: &str, subject: &str) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.inbox.arrived.notified();
            if let Some(m) = self
                .to(to)
                .into_iter()
                .rev()
                .find(|m| m.subject().contains(subject))
            {
                return m;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no mail to {to} with subject containing {subject:?}; got {:?}",
                    self.to(to).iter().map(Mail::subject).collect::<Vec<_>>()
                );
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("lock").take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, inbox: Arc<Inbox>) {
    while let Ok((stream, _)) = listener.accept().await {
        if *inbox.down.lock().expect("lock") {
            drop(stream);
            continue;
        }
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read);
            let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
            let mut to = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if *inbox.down.lock().expect("lock") {
                    return;
                }
                let upper = line.to_ascii_uppercase();
                let mut refused: Option<String> = None;
                let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                    b"250 sink.test\r\n"
                } else if upper.starts_with("MAIL FROM") {
                    to.clear();
                    b"250 OK\r\n"
                } else if upper.starts_with("RCPT TO") {
                    let addr = line[8..]
                        .trim()
                        .trim_start_matches(':')
                        .trim()
                        .trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    refused = refusal(&inbox, &addr);
                    if refused.is_none() {
                        to.push(addr);
                    }
                    b"250 OK\r\n"
                } else if upper.starts_with("DATA") {
                    let _ = write.write_all(b"354 go ahead\r\n").await;
                    let mut raw = String::new();
                    loop {
                        let mut l = String::new();
                        match lines.read_line(&mut l).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if l == ".\r\n" {
                            break;
                        }
                        let l = l.strip_prefix('.').map(str::to_string).unwrap_or(l);
                        raw.push_str(&l);
                    }
                    let mut counted = false;
                    loop {
                        let released = inbox.released.notified();
                        if !*inbox.hold.lock().expect("lock") {
                            break;
                        }
                        if !counted {
                            counted = true;
                            *inbox.held.lock().expect("lock") += 1;
                            inbox.parked.notify_waiters();
                        }
                        released.await;
                    }
                    inbox.mails.lock().expect("lock").push(Mail {
                        to: to.clone(),
                        raw,
                    });
                    inbox.arrived.notify_waiters();
                    b"250 queued\r\n"
                } else if upper.starts_with("QUIT") {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                } else {
                    b"250 OK\r\n"
                };
                let reply = match &refused {
                    Some(answer) => format!("{answer}\r\n").into_bytes(),
                    None => reply.to_vec(),
                };
                if write.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The refusal configured for `address`, counting it down.
fn refusal(inbox: &Inbox, address: &str) -> Option<String> {
    let mut refusals = inbox.refusals.lock().expect("lock");
    let address = address.to_lowercase();
    let i = refusals
        .iter()
        .position(|(a, _, times)| *a == address && times.is_none_or(|n| n > 0))?;
    let entry = refusals.get_mut(i)?;
    if let Some(n) = entry.2.as_mut() {
        *n -= 1;
    }
    Some(entry.1.clone())
}
