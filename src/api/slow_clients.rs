//! Clients that hold connections: a deadline on reading a request body (a stalled body is
//! answered 408 and its connection closed) and a cap on open connections per client address
//! (more are answered 429 and closed at once, before they can hold a file descriptor).
//!
//! actix-web's own `client_request_timeout` bounds only the request head; nothing else bounds
//! how long a body may take to arrive.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage as _, ResponseError as _, rt::net::TcpStream};
use futures_util::Stream;

use crate::api::problem::{ApiError, Code};
use crate::context::Ctx;

/// Bounds the time a request body may take to arrive, from the moment the request reaches the
/// app (its head is in): reading past `BODY_READ_TIMEOUT` fails, and the answer is a 408
/// `request_timeout` problem with `Connection: close`, whatever the handler made of the failed
/// read. Requests whose body is never read are not affected.
pub async fn body_read_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limit) = req
        .app_data::<web::Data<Ctx>>()
        .map(|ctx| ctx.config.body_read_timeout)
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let expired = Arc::new(AtomicBool::new(false));
    let inner = req.take_payload();
    let bounded = DeadlinePayload {
        inner,
        sleep: Box::pin(tokio::time::sleep(limit)),
        expired: expired.clone(),
        done: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(bounded),
    });
    let res = next.call(req).await?;
    if !expired.load(Ordering::Acquire) {
        return Ok(res.map_into_boxed_body());
    }
    let (request, _) = res.into_parts();
    let mut answer = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        Code::RequestTimeout,
        format!(
            "The request body did not arrive within {}.",
            humantime::format_duration(Duration::from_secs(limit.as_secs().max(1)))
        ),
    )
    .error_response();
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(ServiceResponse::new(request, answer))
}

/// A request body that fails once its deadline passes while it is still being waited for.
struct DeadlinePayload {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
    done: bool,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                if item.is_none() {
                    this.done = true;
                }
                Poll::Ready(item)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.expired.store(true, Ordering::Release);
                    this.done = true;
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body read timed out",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Counts open connections per client address and refuses those over the cap the moment
/// they are accepted: a short 429 problem is written and the socket shut down, so the
/// connection ends at once instead of holding a file descriptor until a timeout.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    max: usize,
    exempt: Arc<Vec<IpAddr>>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's place in the count, given back when actix drops the connection's data.
struct Counted {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a refused connection is told before it is closed.
const REFUSAL: &str = concat!(
    "HTTP/1.1 429 Too Many Requests\r\n",
    "content-type: application/problem+json\r\n",
    "retry-after: 1\r\n",
    "cache-control: no-store\r\n",
    "connection: close\r\n",
    "content-length: 171\r\n",
    "\r\n",
    r#"{"type":"urn:account-recovery:problem:rate_limited","title":"Too many requests","status":429,"detail":"Too many open connections from your address.","code":"rate_limited"}"#,
);

impl ConnectionLimit {
    /// At most `max` open connections per address; `exempt` peers (trusted proxies, which
    /// carry many clients) are not counted.
    pub fn new(max: usize, exempt: Vec<IpAddr>) -> Self {
        Self {
            max,
            exempt: Arc::new(exempt),
            open: Arc::default(),
        }
    }

    /// The `HttpServer::on_connect` hook: counts the new connection, and refuses it when its
    /// address already has `max` open.
    pub fn on_connect(&self, io: &dyn Any, data: &mut Extensions) {
        let Some(stream) = io.downcast_ref::<TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let ip = peer.ip().to_canonical();
        if self.exempt.contains(&ip) {
            return;
        }
        let over = {
            let Ok(mut open) = self.open.lock() else {
                return;
            };
            let n = open.entry(ip).or_insert(0);
            *n += 1;
            *n > self.max
        };
        data.insert(Counted {
            ip,
            open: self.open.clone(),
        });
        if over {
            tracing::warn!(
                max = self.max,
                "connection refused: too many from one address"
            );
            // A fresh socket's send buffer takes this at once; should it not, the close says
            // enough.
            // Straight to the socket: tokio's own `try_write` refuses before it has seen the
            // socket writable.
            let socket = socket2::SockRef::from(stream);
            let _ = socket.send(REFUSAL.as_bytes());
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_problem_answer() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["code"], "rate_limited");
        assert_eq!(problem["status"], 429);
    }
}
