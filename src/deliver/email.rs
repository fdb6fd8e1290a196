//! Email (lettre lives here): messages with text + HTML and an optional CSV
//! attachment, and [`SmtpSender`], which delivers them over one SMTP session
//! per run.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Severity;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::SendError;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::outbox::{AddressError, Addressed};
pub use crate::outbox::{Email, InlineImage};

/// Why an email could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error(transparent)]
    Address(AddressError),
    #[error("the email has no recipient (to is empty after rendering)")]
    NoRecipient,
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("inline image {content_id}: {value:?} is not a content type")]
    InlineType { content_id: String, value: String },
}

impl From<AddressError> for EmailError {
    fn from(e: AddressError) -> Self {
        match e {
            AddressError::NoRecipient => Self::NoRecipient,
            other => Self::Address(other),
        }
    }
}

impl Email {
    /// The MIME message: `multipart/mixed` (when there is an attachment)
    /// around `multipart/alternative` (text first, then HTML, inside
    /// `multipart/related` with its inline images when it has any). lettre sets
    /// `Date` and `Message-ID`.
    pub fn to_message(&self) -> Result<Message, EmailError> {
        // The addresses the outbox checked, parsed the same way.
        let Addressed { from, to, cc, bcc } = self.addressed()?;
        let mut builder = Message::builder()
            .from(from.into())
            .subject(self.subject.clone())
            .message_id(self.message_id.clone());
        for to in to {
            builder = builder.to(to.into());
        }
        for cc in cc {
            builder = builder.cc(cc.into());
        }
        for bcc in bcc {
            builder = builder.bcc(bcc.into());
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone());
        let html = SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .body(self.html.clone());
        let alternative = MultiPart::alternative().singlepart(text);
        // With images, the HTML and what it shows by `cid:` travel together
        // as multipart/related (RFC 2387), the HTML first.
        let alternative = if self.inline.is_empty() {
            alternative.singlepart(html)
        } else {
            let mut related = MultiPart::related().singlepart(html);
            for image in &self.inline {
                let kind = ContentType::parse(&image.content_type).map_err(|_| {
                    EmailError::InlineType {
                        content_id: image.content_id.clone(),
                        value: image.content_type.clone(),
                    }
                })?;
                related = related.singlepart(
                    Attachment::new_inline(image.content_id.clone())
                        .body(image.bytes.clone(), kind),
                );
            }
            alternative.multipart(related)
        };
        let body = match &self.attachment {
            None => alternative,
            Some((name, bytes)) => MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new(name.clone()).body(
                    bytes.clone(),
                    ContentType::parse("text/csv; charset=utf-8").expect("a valid content type"),
                ),
            ),
        };
        Ok(builder.multipart(body)?)
    }

    /// The message as RFC 5322 bytes (what an `.eml` file holds).
    pub fn to_eml(&self) -> Result<Vec<u8>, EmailError> {
        Ok(self.to_message()?.formatted())
    }
}

/// Why an [`SmtpSender`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("the extra root certificate is not a PEM certificate: {0}")]
    RootCertificate(String),
    #[error("setting up TLS for {endpoint}: {detail}")]
    Tls { endpoint: String, detail: String },
}

/// A session idle for longer than this is checked with `NOOP` before reuse;
/// servers drop idle clients after a while, and a send on a dead socket would
/// cost a whole retry.
const REVALIDATE_AFTER_IDLE: Duration = Duration::from_secs(5);

/// Delivers [`Email`]s to one SMTP server over **one session per run**:
/// the first [`send`](Self::send) connects (TLS, AUTH), later sends reuse the
/// session, and a failed one is dropped so that the next attempt reconnects.
/// Concurrent sends wait for each other. Call [`close`](Self::close) at the
/// end of the run to say `QUIT`.
///
/// The session is kept here rather than in lettre's pool: the pool parks a
/// connection from a spawned task after each send, so back-to-back sends race
/// it (with `max_size(1)`, 20 sequential sends opened 2 connections). The
/// socket is ours too, for `TCP_NODELAY`; lettre speaks SMTP over it and
/// does STARTTLS; implicit TLS is done here with the same trust.
pub struct SmtpSender {
    host: String,
    port: u16,
    /// `host:port`, for messages.
    endpoint: String,
    security: SmtpSecurity,
    /// For STARTTLS, which lettre performs on our socket.
    starttls: Option<TlsParameters>,
    /// For implicit TLS, which we perform before handing lettre the stream.
    implicit_tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    username: Option<String>,
    password: Option<SecretString>,
    timeout: Duration,
    hello: ClientId,
    session: Mutex<Option<Session>>,
    sessions_opened: std::sync::atomic::AtomicU32,
}

struct Session {
    conn: AsyncSmtpConnection,
    last_used: Instant,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("endpoint", &self.endpoint)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `config`'s server; connects lazily. TLS (STARTTLS or
    /// implicit) trusts the webpki roots plus `extra_root`, a PEM certificate
    /// (a private CA; tests use one).
    pub fn new(config: &SmtpConfig, extra_root: Option<&[u8]>) -> Result<Self, SmtpSetupError> {
        let endpoint = format!("{}:{}", config.host, config.port);
        let tls_error = |detail: String| SmtpSetupError::Tls {
            endpoint: endpoint.clone(),
            detail,
        };
        let extra: Vec<CertificateDer<'static>> = match extra_root {
            None => Vec::new(),
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SmtpSetupError::RootCertificate(e.to_string()))?;
                if certs.is_empty() {
                    return Err(SmtpSetupError::RootCertificate(
                        "no CERTIFICATE block found".into(),
                    ));
                }
                certs
            }
        };
        let (mut starttls, mut implicit_tls) = (None, None);
        match config.security {
            SmtpSecurity::None => {}
            SmtpSecurity::StartTls => {
                let mut builder = TlsParameters::builder(config.host.clone())
                    .certificate_store(CertificateStore::WebpkiRoots);
                for cert in &extra {
                    let cert = Certificate::from_der(cert.to_vec())
                        .map_err(|e| SmtpSetupError::RootCertificate(e.to_string()))?;
                    builder = builder.add_root_certificate(cert);
                }
                starttls = Some(
                    builder
                        .build_rustls()
                        .map_err(|e| tls_error(e.to_string()))?,
                );
            }
            SmtpSecurity::Tls => {
                // The same trust as lettre's STARTTLS: webpki roots + the extra
                // root, aws-lc-rs, rustls' safe default protocol versions.
                let mut roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                for cert in extra {
                    roots
                        .add(cert)
                        .map_err(|e| SmtpSetupError::RootCertificate(e.to_string()))?;
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| tls_error(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(config.host.clone())
                    .map_err(|_| tls_error("the host is not a valid DNS name or IP".into()))?;
                implicit_tls = Some((tokio_rustls::TlsConnector::from(Arc::new(tls)), name));
            }
        }
        Ok(Self {
            host: config.host.clone(),
            port: config.port,
            endpoint,
            security: config.security,
            starttls,
            implicit_tls,
            username: config.username.clone(),
            password: config.password.clone(),
            timeout: config.timeout,
            hello: ClientId::default(),
            session: Mutex::new(None),
            sessions_opened: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// SMTP sessions opened so far (one per run when all goes well).
    pub fn sessions_opened(&self) -> u32 {
        self.sessions_opened
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One attempt at delivering `email` to every envelope recipient (to, cc
    /// and bcc). Failures are classified for [`super::with_retries`]: SMTP
    /// 4xx, connection errors and timeouts are transient; SMTP 5xx, bad
    /// addresses and rejected TLS certificates are permanent.
    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = email
            .to_message()
            .map_err(|e| SendError::permanent(format!("building the email: {e}")))?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();

        let mut guard = self.session.lock().await;
        let session = self.ready_session(&mut guard).await?;
        let sent = tokio::time::timeout(self.timeout, session.conn.send(&envelope, &bytes)).await;
        let result = match sent {
            Ok(Ok(_)) => {
                session.last_used = Instant::now();
                return Ok(());
            }
            Ok(Err(e)) => Err(self.classify("sending the message to", &e)),
            Err(_) => Err(self.timed_out("sending the message to")),
        };
        // lettre marks the connection broken after any failure (it has sent
        // QUIT); a timed-out one is in an unknown state. Either way: next
        // attempt starts a new session.
        *guard = None;
        result
    }

    /// Connects, negotiates TLS and authenticates without sending anything;
    /// the session is kept for the sends that follow.
    pub async fn test_connection(&self) -> Result<(), SendError> {
        let mut guard = self.session.lock().await;
        self.ready_session(&mut guard).await.map(|_| ())
    }

    /// Ends the session politely (`QUIT`), if there is one.
    pub async fn close(&self) {
        if let Some(mut session) = self.session.lock().await.take() {
            let _ = tokio::time::timeout(self.timeout, session.conn.quit()).await;
        }
    }

    /// The open session, checked if it sat idle, or a new one.
    async fn ready_session<'a>(
        &self,
        slot: &'a mut Option<Session>,
    ) -> Result<&'a mut Session, SendError> {
        if let Some(session) = slot.as_mut() {
            let usable = !session.conn.has_broken()
                && (session.last_used.elapsed() < REVALIDATE_AFTER_IDLE
                    || tokio::time::timeout(self.timeout, session.conn.test_connected())
                        .await
                        .unwrap_or(false));
            if !usable {
                *slot = None;
            }
        }
        if slot.is_none() {
            let conn = self.connect().await?;
            self.sessions_opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *slot = Some(Session {
                conn,
                last_used: Instant::now(),
            });
        }
        Ok(slot.as_mut().expect("a session was just opened"))
    }

    /// TCP (+ implicit TLS), greeting and EHLO; then STARTTLS and AUTH as
    /// configured. Each step is bounded by the timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let what = "connecting to";
        let tcp = self
            .bounded_io(what, async {
                let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
                // SMTP writes a message, then its final dot, then waits for
                // the reply: with Nagle on, that dot waits for the server's
                // delayed ACK, 40 ms per message (measured on loopback).
                tcp.set_nodelay(true)?;
                Ok(tcp)
            })
            .await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit_tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(TlsTcp(
                self.bounded_io(what, connector.connect(name.clone(), tcp))
                    .await?,
            )),
        };
        let mut conn = self
            .bounded(
                what,
                AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
            )
            .await?;
        if let Some(tls) = &self.starttls {
            if !conn.can_starttls() {
                return Err(SendError::permanent(format!(
                    "{} does not offer STARTTLS; set `security = \"tls\"` for implicit TLS or \
                     `\"none\"` for a plain local relay",
                    self.endpoint
                )));
            }
            self.bounded("STARTTLS with", conn.starttls(tls.clone(), &self.hello))
                .await?;
        }
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            let credentials = Credentials::new(user.clone(), password.expose_secret().to_owned());
            let what = format!("authenticating as {user:?} at");
            self.bounded(&what, conn.auth(DEFAULT_MECHANISMS, &credentials))
                .await?;
        }
        Ok(conn)
    }

    async fn bounded_io<T>(
        &self,
        what: &str,
        step: impl Future<Output = io::Result<T>>,
    ) -> Result<T, SendError> {
        match tokio::time::timeout(self.timeout, step).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(SendError::Refused {
                message: format!(
                    "{what} {}: {} (no mail server listens there)",
                    self.endpoint,
                    super::REFUSED
                ),
            }),
            Ok(Err(e)) => {
                let (transient, detail) = match tls_failure(&e) {
                    Some(verdict) => verdict,
                    None => (true, e.to_string()),
                };
                Err(self.failure(what, transient, detail))
            }
            Err(_) => Err(self.timed_out(what)),
        }
    }

    async fn bounded<T>(
        &self,
        what: &str,
        step: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, SendError> {
        match tokio::time::timeout(self.timeout, step).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.classify(what, &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> SendError {
        SendError::transient(format!(
            "{what} {}: timed out after {:?}",
            self.endpoint, self.timeout
        ))
    }

    /// Transient or permanent, with a message naming the step, the server and
    /// the SMTP reply; never the password.
    fn classify(&self, what: &str, e: &lettre::transport::smtp::Error) -> SendError {
        let (transient, detail) = if let Some(code) = e.status() {
            // lettre keeps the reply's text as the error's source.
            let text = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            (
                code.severity == Severity::TransientNegativeCompletion,
                format!("SMTP {code} {text}").trim_end().to_owned(),
            )
        } else if let Some(verdict) = rustls_error(e).map(tls_verdict) {
            verdict
        } else if e.is_timeout() {
            (true, format!("timed out: {e}"))
        } else {
            // Client errors (no STARTTLS offered, no common AUTH mechanism)
            // and a shut-down transport will not heal; connection, network
            // and garbled-reply errors may.
            (!(e.is_client() || e.is_transport_shutdown()), e.to_string())
        };
        self.failure(what, transient, detail)
    }

    /// The error for a failed step, its message scrubbed of the password.
    fn failure(&self, what: &str, transient: bool, detail: String) -> SendError {
        let mut message = format!("{what} {}: {detail}", self.endpoint);
        if let Some(password) = &self.password {
            let password = password.expose_secret();
            if !password.is_empty() {
                message = message.replace(password, "[redacted]");
            }
        }
        if transient {
            SendError::transient(message)
        } else {
            SendError::permanent(message)
        }
    }
}

/// `(transient, detail)` for a TLS failure: a rejected certificate or a
/// port that does not speak TLS is permanent; other handshake trouble is not.
fn tls_verdict(tls: &rustls::Error) -> (bool, String) {
    let certificate = matches!(
        tls,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
    );
    // Garbage where a TLS record should be: the port speaks plain SMTP (a
    // `security` mismatch), which no retry fixes.
    let not_tls = matches!(tls, rustls::Error::InvalidMessage(_));
    let detail = if certificate {
        format!("TLS certificate rejected: {tls}")
    } else if not_tls {
        format!("TLS failed ({tls}); does this port speak TLS? Check `security` in [smtp]")
    } else {
        format!("TLS failed: {tls}")
    };
    (!(certificate || not_tls), detail)
}

/// The rustls error inside an `io::Error` from a TLS handshake, as a verdict.
fn tls_failure(e: &io::Error) -> Option<(bool, String)> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(tls_verdict)
}

/// A TLS stream we opened, for lettre to use as its transport.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The rustls error behind a lettre error: handshake failures arrive as an
/// `io::Error` wrapping it, whose `source()` skips the wrapped error itself.
fn rustls_error(e: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    crate::errors::causes(e).skip(1).find_map(|err| {
        err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            from: "Training Reports <training@example.com>".into(),
            to: vec!["Dana Ortiz <dana.ortiz@example.com>".into()],
            cc: vec![],
            bcc: vec!["audit@example.com".into()],
            subject: "Overdue training, north-yard: 3".into(),
            text: "3 overdue".into(),
            html: "<p>3 overdue</p>".into(),
            attachment: None,
            message_id: None,
            inline: Vec::new(),
        }
    }

    #[test]
    fn a_message_has_both_parts_date_and_message_id_and_no_bcc_header() {
        let eml = String::from_utf8(email().to_eml().unwrap()).unwrap();
        assert!(eml.contains("multipart/alternative"), "{eml}");
        assert!(eml.contains("text/plain") && eml.contains("text/html"));
        assert!(eml.contains("\r\nDate: "));
        assert!(eml.contains("\r\nMessage-ID: "));
        assert!(
            eml.contains("To: \"Dana Ortiz\" <dana.ortiz@example.com>"),
            "{eml}"
        );
        assert!(
            !eml.contains("audit@example.com"),
            "Bcc is never in the headers"
        );
        let envelope = email().to_message().unwrap().envelope().to().len();
        assert_eq!(envelope, 2, "but Bcc is a recipient");
    }

    #[test]
    fn an_attachment_makes_it_multipart_mixed() {
        let mut e = email();
        e.attachment = Some(("assignments.csv".into(), b"a,b\r\n1,2\r\n".to_vec()));
        let eml = String::from_utf8(e.to_eml().unwrap()).unwrap();
        assert!(eml.contains("multipart/mixed"));
        assert!(eml.contains("filename=\"assignments.csv\""), "{eml}");
    }

    #[test]
    fn an_empty_rendered_recipient_is_an_error_not_a_silent_drop() {
        let mut e = email();
        e.to = vec!["  ".into()];
        assert!(matches!(e.to_message(), Err(EmailError::NoRecipient)));
        e.to = vec!["not an address".into()];
        let err = e.to_message().unwrap_err().to_string();
        assert!(err.contains("to address \"not an address\""), "{err}");
    }
}
