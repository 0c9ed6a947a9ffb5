//! A fault-injecting TCP proxy for the chaos tests: put it between a process and a dependency
//! (a dataplane and Redis, a dataplane and the control plane) and change, while traffic flows,
//! what the link does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::free_port;

/// What the link does to the bytes crossing it, both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards at once.
    Pass,
    /// Holds every chunk this long before forwarding it (a slow network or a slow server).
    Slow(Duration),
    /// A partition: connections stay open (and new ones are accepted) but nothing crosses
    /// until the fault is lifted, when what was held goes through (as TCP retransmits would).
    Partition,
    /// Resets every open connection and every new one (a killed peer, a firewall's RST).
    Reset,
}

pub struct FaultProxy {
    pub port: u16,
    fault: watch::Sender<Fault>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to `127.0.0.1:target`.
    pub async fn start(target: u16) -> FaultProxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let (fault, watch) = watch::channel(Fault::Pass);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watch = watch.clone();
                if *watch.borrow() == Fault::Reset {
                    reset(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return reset(client);
                    };
                    link(client, server, watch).await;
                });
            }
        });
        FaultProxy {
            port,
            fault,
            accept,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.fault.send_replace(Fault::Reset);
    }
}

/// Closes with a RST rather than a FIN, as a dead peer's host would answer.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn link(client: TcpStream, server: TcpStream, fault: watch::Receiver<Fault>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // A reset closes both connections abruptly.
    let _ = client.set_zero_linger();
    let _ = server.set_zero_linger();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut watch = fault.clone();
    let reset_requested = async move {
        while watch.changed().await.is_ok() {
            if *watch.borrow() == Fault::Reset {
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    // Both connections close when the pumps (which own their halves) are dropped.
    tokio::select! {
        _ = async {
            tokio::join!(
                pump(client_read, server_write, fault.clone()),
                pump(server_read, client_write, fault),
            )
        } => {}
        () = reset_requested => {}
    }
}

/// Forwards one direction under the current fault, until either side closes or a reset.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::Pass => break,
                Fault::Slow(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Fault::Partition => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
                Fault::Reset => return,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
