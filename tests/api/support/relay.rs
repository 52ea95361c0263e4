//! A TCP relay on loopback the test can cut and restore, to make a server go away under the
//! app without touching the server itself.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Relays `127.0.0.1:port` to an upstream address while open.
pub struct TcpRelay {
    port: u16,
    upstream: String,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    accept: Option<JoinHandle<()>>,
    links: Vec<AbortHandle>,
}

impl TcpRelay {
    /// Starts relaying a free loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let relay = Self {
            port,
            upstream: upstream.to_string(),
            inner: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    /// The loopback port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every relayed connection and refuses new ones until [`TcpRelay::restore`].
    pub fn cut(&self) {
        let mut inner = self.inner.lock().expect("lock");
        if let Some(accept) = inner.accept.take() {
            accept.abort();
        }
        for link in inner.links.drain(..) {
            link.abort();
        }
    }

    /// Accepts again on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind relay");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let upstream = self.upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                let mut inner = inner.lock().expect("lock");
                inner.links.retain(|l| !l.is_finished());
                inner.links.push(link.abort_handle());
            }
        });
        self.inner.lock().expect("lock").accept = Some(accept);
    }
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.cut();
    }
}
