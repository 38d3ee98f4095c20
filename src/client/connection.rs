//! The client's connection: TLS (or plain TCP) underneath, messages on top.

use std::sync::Arc;

use futures_util::StreamExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::FramedRead;

use crate::proto::{Frame, LineCodec, LineLimits, Message, ParseError};
use crate::tls::{self, Fingerprint};

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {source}{}", connect_hint(.source))]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "TLS handshake with {addr} failed: {source} (is it a confab tracker? use --no-tls for a plain one)"
    )]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("the tracker sent no certificate")]
    NoCertificate,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// How long a TCP connect may take: a firewall that drops packets would
/// otherwise leave the user looking at nothing for two minutes.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What to check when a connect fails, in the words of someone setting up
/// a classroom, not of the socket API.
fn connect_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => {
            "\nNothing answers at that address and port. Is the tracker running? Are the address and port the ones it printed (`clients join with: ...`)? Is the port open in the tracker machine's firewall?"
        }
        TimedOut => {
            "\nNo answer at all. Are the address and port right? A firewall on the tracker's machine (or the network) may be dropping the connection: the port must be open there."
        }
        HostUnreachable | NetworkUnreachable => {
            "\nThat address cannot be reached from here. Is it right, and are both machines on the same network?"
        }
        _ => "",
    }
}

/// Accepts any certificate *chain* (trackers are self-signed; trust comes
/// from pinning the fingerprint after the handshake), but still checks the
/// handshake signatures, so the peer must hold the certificate's private key.
#[derive(Debug)]
struct PinAfterHandshake(Arc<CryptoProvider>);

impl ServerCertVerifier for PinAfterHandshake {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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

/// TLS settings for talking to a tracker: any certificate chain is accepted
/// and the caller checks the peer's fingerprint after the handshake (see
/// [`PinAfterHandshake`]). The load generator uses it too.
pub fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    Ok(client_config_builder()?.with_no_client_auth())
}

/// [`client_config`] before its client certificate is chosen (direct
/// sessions show one).
pub fn client_config_builder() -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    let provider = tls::provider();
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinAfterHandshake(provider))),
    )
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Connection {
    framed: FramedRead<Box<dyn Stream>, LineCodec>,
    /// Our end's address: direct sessions listen there.
    local: Option<std::net::SocketAddr>,
}

/// What came off the wire.
#[derive(Debug)]
pub enum Incoming {
    /// A message from the tracker, or, for a line that could not be used
    /// (too long, not UTF-8, malformed), a `FAIL * LINE_SKIPPED` made
    /// here that says so: a line is never dropped without a word.
    Message(Message),
    /// A line of nothing but spaces: ignored, as Modern IRC says.
    Garbage,
}

/// The `FAIL` shown in place of a line that could not be used. Built here,
/// not sent by the tracker, so it has no source.
fn skipped(why: &str) -> Incoming {
    Incoming::Message(
        Message::new("FAIL")
            .param("*")
            .param("LINE_SKIPPED")
            .param(format!("A line from the tracker was skipped: {why}")),
    )
}

/// What one frame from the tracker gives.
fn incoming(frame: Frame) -> Incoming {
    let limits = LineLimits::FROM_SERVER;
    match frame {
        Frame::Line(line) => match Message::parse(&line) {
            Ok(m) => Incoming::Message(m),
            Err(ParseError::Empty) => Incoming::Garbage,
            Err(e) => skipped(&format!("it is not an IRC message ({e})")),
        },
        Frame::TooLong => skipped(&format!(
            "it was longer than confab reads ({} bytes of tags, {} bytes of message)",
            limits.tags, limits.body
        )),
        Frame::InvalidUtf8 => skipped("it was not valid UTF-8"),
    }
}

impl Connection {
    /// Connects; with `tls`, returns the certificate's fingerprint so the
    /// caller can decide whether to trust it before sending anything.
    pub async fn open(
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<(Connection, Option<Fingerprint>), ConnectError> {
        let addr = format!("{host}:{port}");
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)));
        let tcp = match connecting.await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )),
        }
        .map_err(|source| ConnectError::Connect {
            addr: addr.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        if !tls {
            return Ok((
                Connection {
                    framed: FramedRead::new(Box::new(tcp), LineCodec::from_server()),
                    local,
                },
                None,
            ));
        }
        let config = client_config()?;
        let name = ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
            ServerName::try_from("confab-tracker").expect("static name is valid")
        });
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or(ConnectError::NoCertificate)?;
        let fp = Fingerprint::of(cert);
        Ok((
            Connection {
                framed: FramedRead::new(Box::new(stream), LineCodec::from_server()),
                local,
            },
            Some(fp),
        ))
    }

    /// Next message; `None` when the tracker closed the connection.
    /// Cancel-safe (it only awaits the framed reader).
    pub async fn recv(&mut self) -> std::io::Result<Option<Incoming>> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(frame)) => Ok(Some(incoming(frame))),
        }
    }

    pub async fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        let io = self.framed.get_mut();
        io.write_all(msg.to_line().as_bytes()).await?;
        io.flush().await
    }

    /// The address our end of the connection uses (the interface that
    /// reaches the tracker).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local
    }

    pub async fn close(&mut self) {
        let _ = self.framed.get_mut().shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::state::{App, Event};

    fn shown(frame: Frame) -> Vec<Event> {
        let Incoming::Message(m) = incoming(frame) else {
            panic!("nothing to show");
        };
        App::new("me", "tracker")
            .on_message(&m, jiff::Timestamp::UNIX_EPOCH)
            .events
    }

    #[test]
    fn unusable_lines_are_reported_not_dropped() {
        let texts = |events: Vec<Event>| -> Vec<String> {
            events
                .into_iter()
                .map(|e| match e {
                    Event::Error { text, .. } => text,
                    other => panic!("not an error: {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            texts(shown(Frame::TooLong)),
            [
                "A line from the tracker was skipped: it was longer than confab reads \
              (8191 bytes of tags, 4096 bytes of message)"
            ]
        );
        assert_eq!(
            texts(shown(Frame::InvalidUtf8)),
            ["A line from the tracker was skipped: it was not valid UTF-8"]
        );
        assert_eq!(
            texts(shown(Frame::Line("@tags-only".into()))),
            [
                "A line from the tracker was skipped: it is not an IRC message (malformed tag section)"
            ]
        );
        assert!(matches!(
            incoming(Frame::Line("   ".into())),
            Incoming::Garbage
        ));
    }
}
