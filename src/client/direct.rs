//! Direct sessions' connections (IRC's DCC CHAT): listening for the
//! person we offered a session to, connecting to one who offered us one,
//! TLS between two confab clients with each side's certificate checked
//! against the fingerprint that came through the tracker, and the lines
//! of text both ways. The decisions are the application state's
//! (`client/sessions.rs`); this only does what it is told
//! ([`DirectCmd`]) and reports what happened ([`DirectEvent`]), so both
//! chat loops drive it the same way.
//!
//! Each link is one task that owns its socket (no split halves, as with
//! the tracker's connections), reached by a channel of lines to send and
//! a watch of the fingerprint the other side must show.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;

use crate::proto::{Frame, LineCodec};
use crate::tls::{self, Fingerprint};

/// How long an offer waits for the other side to connect.
pub const OFFER_WAIT: Duration = Duration::from_secs(120);
/// How long a connect to an offered address may take (a firewall that
/// drops packets would otherwise leave the session hanging).
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long the offerer waits, once connected, for the accepter's
/// fingerprint to come through the tracker.
pub const FINGERPRINT_WAIT: Duration = Duration::from_secs(30);
/// News from the links waiting to be handled; past it a link's reader
/// waits.
const EVENTS_QUEUED: usize = 256;
/// How long a TLS handshake may take.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// What the application asks of the links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectCmd {
    /// Listen for `peer` (on the address the tracker connection uses);
    /// with `tls`, the peer must show the certificate whose fingerprint
    /// [`DirectCmd::Expect`] gives.
    Listen { peer: String, tls: bool },
    /// Connect to `peer`'s offer; with a fingerprint, by TLS, and the
    /// peer's certificate must match it.
    Connect {
        peer: String,
        addr: SocketAddr,
        tls: Option<Fingerprint>,
    },
    /// The accepter's fingerprint arrived through the tracker.
    Expect {
        peer: String,
        fingerprint: Fingerprint,
    },
    /// A line of text to the peer.
    Send { peer: String, line: String },
    /// End the link (and stop listening).
    Close { peer: String },
}

/// What happened on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectEvent {
    /// Listening: the address and port to put in the offer.
    Listening {
        peer: String,
        addr: SocketAddr,
    },
    /// Connected (and, with TLS, the fingerprints checked).
    Open {
        peer: String,
    },
    Line {
        peer: String,
        text: String,
    },
    /// A line from the peer that could not be used.
    Skipped {
        peer: String,
        why: String,
    },
    /// The link could not be made: nobody connected, refused, timed out,
    /// unreachable, TLS failed.
    Failed {
        peer: String,
        why: String,
    },
    /// The peer's certificate is not the one its fingerprint through the
    /// tracker named: the link was dropped unused.
    Mismatch {
        peer: String,
        expected: Fingerprint,
        received: Fingerprint,
    },
    /// The link ended after it was open: the other side closed it
    /// (`why` is `None`), or it broke.
    Ended {
        peer: String,
        why: Option<String>,
    },
}

impl DirectEvent {
    pub fn peer(&self) -> &str {
        match self {
            DirectEvent::Listening { peer, .. }
            | DirectEvent::Open { peer }
            | DirectEvent::Line { peer, .. }
            | DirectEvent::Skipped { peer, .. }
            | DirectEvent::Failed { peer, .. }
            | DirectEvent::Mismatch { peer, .. }
            | DirectEvent::Ended { peer, .. } => peer,
        }
    }
}

/// This run's throwaway certificate for direct sessions: made at start,
/// never stored; its fingerprint travels in our offers and acceptances.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
}

impl Identity {
    fn new() -> Result<Identity, rcgen::Error> {
        let made = rcgen::generate_simple_self_signed(vec!["confab-session".to_string()])?;
        let cert = made.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        Ok(Identity {
            fingerprint: Fingerprint::of(&cert),
            cert,
            key,
        })
    }
}

struct Link {
    lines: mpsc::UnboundedSender<String>,
    expect: watch::Sender<Option<Fingerprint>>,
    task: tokio::task::JoinHandle<()>,
}

/// The direct links of one client, by peer (case-folded nick).
pub struct DirectLinks {
    identity: Option<Arc<Identity>>,
    /// The address to listen on: the one the tracker connection uses.
    listen_ip: IpAddr,
    /// The address to put in offers, when not `listen_ip` (`--p2p-address`).
    advertise: Option<IpAddr>,
    links: HashMap<String, Link>,
    events_tx: mpsc::Sender<DirectEvent>,
    events: mpsc::Receiver<DirectEvent>,
}

impl DirectLinks {
    pub fn new(listen_ip: IpAddr, advertise: Option<IpAddr>) -> DirectLinks {
        // Bounded: a peer sending faster than the screen shows waits on
        // its TCP connection instead of filling our memory.
        let (events_tx, events) = mpsc::channel(EVENTS_QUEUED);
        let identity = match Identity::new() {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                tracing::warn!("no certificate for encrypted sessions: {e}");
                None
            }
        };
        DirectLinks {
            identity,
            listen_ip,
            advertise,
            links: HashMap::new(),
            events_tx,
            events,
        }
    }

    /// Our certificate's fingerprint (`None`: none could be made, so only
    /// plain sessions are possible).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.identity.as_ref().map(|i| i.fingerprint)
    }

    /// The next thing that happened on a link. Cancel-safe.
    pub async fn next(&mut self) -> DirectEvent {
        match self.events.recv().await {
            Some(e) => e,
            // We hold a sender: never reached.
            None => std::future::pending().await,
        }
    }

    pub fn apply_all(&mut self, cmds: Vec<DirectCmd>) {
        for c in cmds {
            self.apply(c);
        }
    }

    pub fn apply(&mut self, cmd: DirectCmd) {
        match cmd {
            DirectCmd::Listen { peer, tls } => {
                let identity = if tls {
                    match &self.identity {
                        Some(i) => Some(i.clone()),
                        None => {
                            let _ = self.events_tx.try_send(DirectEvent::Failed {
                                peer,
                                why: "no certificate could be made for an encrypted session".into(),
                            });
                            return;
                        }
                    }
                } else {
                    None
                };
                let (ip, advertise) = (self.listen_ip, self.advertise);
                self.start(peer, move |peer, io| {
                    listen(peer, ip, advertise, identity, io)
                });
            }
            DirectCmd::Connect { peer, addr, tls } => {
                let identity = match (tls, &self.identity) {
                    (Some(expected), Some(i)) => Some((i.clone(), expected)),
                    (Some(_), None) => {
                        let _ = self.events_tx.try_send(DirectEvent::Failed {
                            peer,
                            why: "no certificate could be made for an encrypted session".into(),
                        });
                        return;
                    }
                    (None, _) => None,
                };
                self.start(peer, move |peer, io| connect(peer, addr, identity, io));
            }
            DirectCmd::Expect { peer, fingerprint } => {
                if let Some(link) = self.links.get(&peer) {
                    let _ = link.expect.send(Some(fingerprint));
                }
            }
            DirectCmd::Send { peer, line } => {
                if let Some(link) = self.links.get(&peer) {
                    let _ = link.lines.send(line);
                }
            }
            DirectCmd::Close { peer } => {
                if let Some(link) = self.links.remove(&peer) {
                    // Dropping the line sender ends an open link cleanly
                    // (its task shuts the stream down); a listener or a
                    // connect still waiting is stopped.
                    drop(link.lines);
                    let abort = link.task.abort_handle();
                    tokio::spawn(async move {
                        if tokio::time::timeout(Duration::from_secs(2), link.task)
                            .await
                            .is_err()
                        {
                            abort.abort();
                        }
                    });
                }
            }
        }
    }

    fn start<F, Fut>(&mut self, peer: String, run: F)
    where
        F: FnOnce(String, LinkIo) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(old) = self.links.remove(&peer) {
            old.task.abort();
        }
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let (expect_tx, expect) = watch::channel(None);
        let io = LinkIo {
            lines,
            expect,
            events: self.events_tx.clone(),
        };
        let task = tokio::spawn(run(peer.clone(), io));
        self.links.insert(
            peer,
            Link {
                lines: lines_tx,
                expect: expect_tx,
                task,
            },
        );
    }
}

impl Drop for DirectLinks {
    fn drop(&mut self) {
        for (_, link) in self.links.drain() {
            link.task.abort();
        }
    }
}

/// A link task's ends of its channels.
struct LinkIo {
    lines: mpsc::UnboundedReceiver<String>,
    expect: watch::Receiver<Option<Fingerprint>>,
    events: mpsc::Sender<DirectEvent>,
}

impl LinkIo {
    async fn tell(&self, e: DirectEvent) {
        let _ = self.events.send(e).await;
    }

    async fn fail(&self, peer: &str, why: String) {
        self.tell(DirectEvent::Failed {
            peer: peer.to_string(),
            why,
        })
        .await
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The offerer's side: listen, take the first connection, check it, chat.
async fn listen(
    peer: String,
    ip: IpAddr,
    advertise: Option<IpAddr>,
    identity: Option<Arc<Identity>>,
    mut io: LinkIo,
) {
    let listener = match TcpListener::bind((ip, 0)).await {
        Ok(l) => l,
        Err(e) => return io.fail(&peer, format!("cannot listen on {ip}: {e}")).await,
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => return io.fail(&peer, format!("cannot listen on {ip}: {e}")).await,
    };
    io.tell(DirectEvent::Listening {
        peer: peer.clone(),
        addr: SocketAddr::new(advertise.unwrap_or(ip), port),
    })
    .await;
    let tcp = match tokio::time::timeout(OFFER_WAIT, listener.accept()).await {
        Ok(Ok((tcp, _))) => tcp,
        Ok(Err(e)) => {
            return io
                .fail(&peer, format!("cannot take the connection: {e}"))
                .await;
        }
        Err(_) => {
            return io
                .fail(
                    &peer,
                    format!("nobody connected within {} s", OFFER_WAIT.as_secs()),
                )
                .await;
        }
    };
    // One connection per offer: nobody else may take its place.
    drop(listener);
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match identity {
        None => Box::new(tcp),
        Some(identity) => {
            let config = match server_config(&identity) {
                Ok(c) => c,
                Err(e) => return io.fail(&peer, format!("TLS setup failed: {e}")).await,
            };
            let accepting = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
            let tls = match tokio::time::timeout(HANDSHAKE_WAIT, accepting).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return io.fail(&peer, format!("TLS handshake failed: {e}")).await,
                Err(_) => return io.fail(&peer, "TLS handshake timed out".into()).await,
            };
            let Some(received) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Fingerprint::of(c))
            else {
                return io
                    .fail(&peer, "the other side showed no certificate".into())
                    .await;
            };
            // Its fingerprint comes through the tracker, maybe after the
            // connection did.
            let expected = tokio::time::timeout(FINGERPRINT_WAIT, async {
                loop {
                    if let Some(fp) = *io.expect.borrow_and_update() {
                        return Some(fp);
                    }
                    if io.expect.changed().await.is_err() {
                        return None;
                    }
                }
            })
            .await;
            let Ok(Some(expected)) = expected else {
                return io
                    .fail(
                        &peer,
                        "the other side's fingerprint never came through the tracker".into(),
                    )
                    .await;
            };
            if expected != received {
                return io
                    .tell(DirectEvent::Mismatch {
                        peer,
                        expected,
                        received,
                    })
                    .await;
            }
            Box::new(tls)
        }
    };
    chat(peer, stream, io).await;
}

/// The accepter's side: connect, check the certificate, chat.
async fn connect(
    peer: String,
    addr: SocketAddr,
    tls: Option<(Arc<Identity>, Fingerprint)>,
    io: LinkIo,
) {
    let tcp = match tokio::time::timeout(CONNECT_WAIT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return io
                .fail(&peer, format!("cannot connect to {addr}: {e}"))
                .await;
        }
        Err(_) => {
            return io
                .fail(
                    &peer,
                    format!("no answer from {addr} within {} s", CONNECT_WAIT.as_secs()),
                )
                .await;
        }
    };
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some((identity, expected)) => {
            let config = match client_config(&identity) {
                Ok(c) => c,
                Err(e) => return io.fail(&peer, format!("TLS setup failed: {e}")).await,
            };
            let name = ServerName::try_from("confab-session").expect("static name is valid");
            let connecting = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
            let tls = match tokio::time::timeout(HANDSHAKE_WAIT, connecting).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    return io
                        .fail(&peer, format!("TLS handshake with {addr} failed: {e}"))
                        .await;
                }
                Err(_) => {
                    return io
                        .fail(&peer, format!("TLS handshake with {addr} timed out"))
                        .await;
                }
            };
            let Some(received) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Fingerprint::of(c))
            else {
                return io
                    .fail(&peer, "the other side showed no certificate".into())
                    .await;
            };
            if received != expected {
                return io
                    .tell(DirectEvent::Mismatch {
                        peer,
                        expected,
                        received,
                    })
                    .await;
            }
            Box::new(tls)
        }
    };
    chat(peer, stream, io).await;
}

/// An open link: lines both ways until either side ends it.
async fn chat(peer: String, stream: Box<dyn Stream>, mut io: LinkIo) {
    io.tell(DirectEvent::Open { peer: peer.clone() }).await;
    let mut framed = FramedRead::new(stream, LineCodec::from_server());
    let why = loop {
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(Frame::Line(text))) => io.tell(DirectEvent::Line { peer: peer.clone(), text }).await,
                Some(Ok(Frame::TooLong)) => io.tell(DirectEvent::Skipped {
                    peer: peer.clone(),
                    why: "it was longer than 4096 bytes".into(),
                }).await,
                Some(Ok(Frame::InvalidUtf8)) => io.tell(DirectEvent::Skipped {
                    peer: peer.clone(),
                    why: "it was not valid UTF-8".into(),
                }).await,
                Some(Err(e)) => break Some(format!("connection error: {e}")),
                None => break None,
            },
            line = io.lines.recv() => match line {
                Some(line) => {
                    let mut bytes = line.into_bytes();
                    bytes.extend_from_slice(b"\r\n");
                    let w = framed.get_mut();
                    if let Err(e) = async { w.write_all(&bytes).await?; w.flush().await }.await {
                        break Some(format!("connection error: {e}"));
                    }
                }
                // Closed by us: said goodbye, nothing more to report.
                None => {
                    let _ = framed.get_mut().shutdown().await;
                    return;
                }
            },
        }
    };
    io.tell(DirectEvent::Ended { peer, why }).await;
}

fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = tls::provider();
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    Ok(Arc::new(config))
}

fn client_config(identity: &Identity) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let config = super::connection::client_config_builder()?
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    Ok(Arc::new(config))
}

/// Asks for the accepter's certificate and takes any (it is self-signed;
/// trust comes from comparing its fingerprint with the one that came
/// through the tracker), but checks the handshake's signatures, so the
/// peer must hold the certificate's private key.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
