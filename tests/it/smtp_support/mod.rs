//! A real SMTP server on loopback for the SMTP tests and the benchmark:
//! mailin-embedded (an SMTP server library, blocking, rustls for STARTTLS)
//! behind a small front door that counts TCP connections and can terminate
//! implicit TLS. Everything binds port 0 on 127.0.0.1.
#![allow(dead_code)] // benches/smtp_send.rs includes this file and uses a subset

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig, response};
use secrecy::SecretString;
use trainwatch::config::{SmtpConfig, SmtpSecurity};

/// A throwaway CA and a leaf for `localhost` and `127.0.0.1` signed by it
/// (rustls rejects a lone self-signed certificate).
pub struct TestCa {
    pub ca_pem: String,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "trainwatch test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf_cert.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            leaf_der: leaf_cert.der().to_vec(),
            leaf_key_der: leaf_key.serialize_der(),
        }
    }
}

/// What the server received and did.
#[derive(Debug, Default)]
pub struct Log {
    /// TCP connections accepted by the front door.
    pub connections: usize,
    /// Messages accepted (250 after the data).
    pub messages: Vec<Received>,
    /// Messages refused at `DATA`.
    pub refused: usize,
    /// `(mechanism, username, accepted)` of each AUTH.
    pub auths: Vec<(&'static str, String, bool)>,
}

/// One accepted message: the envelope and the bytes after `DATA`.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    /// The message decoded by mail-parser.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable MIME message")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Security {
    /// Plain TCP, no STARTTLS offered.
    Plain,
    /// STARTTLS offered (and AUTH only after it, as mailin insists).
    StartTls,
    /// TLS from the first byte (the front door terminates it).
    Implicit,
}

/// How the server should behave.
pub struct Script {
    pub tls: Security,
    /// Username and password that AUTH accepts; `None`: no AUTH offered.
    pub auth: Option<(String, String)>,
    /// Offer only AUTH LOGIN (PLAIN and LOGIN otherwise).
    pub login_only: bool,
    /// Replies to the `DATA` command, used in order; then 354 as usual.
    /// (Not to the end of the data: mailin stays in the data state after
    /// refusing there, so the client's QUIT would go unanswered.)
    pub data_replies: VecDeque<(u16, String)>,
    /// Recipients refused at `RCPT TO` with 550.
    pub refuse_recipients: Vec<String>,
    /// Keep the bytes of accepted messages (off in the benchmark).
    pub keep_data: bool,
    /// How long the server thinks before answering each `DATA` command: a
    /// slow server, so a test can stop a sender part-way through a run. A
    /// message interrupted there was never accepted.
    pub data_delay: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            tls: Security::Plain,
            auth: None,
            login_only: false,
            data_replies: VecDeque::new(),
            refuse_recipients: Vec::new(),
            keep_data: true,
            data_delay: Duration::ZERO,
        }
    }
}

/// A running server; it lives until the test process ends.
pub struct TestSmtp {
    pub addr: SocketAddr,
    pub tls: Security,
    /// The CA to trust when TLS is on.
    pub ca: Option<TestCa>,
    log: Arc<Mutex<Log>>,
    _certs: Option<tempfile::TempDir>,
}

impl TestSmtp {
    /// Starts the server; the front door runs on the caller's tokio runtime.
    pub async fn start(script: Script) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let ca = (script.tls != Security::Plain).then(TestCa::new);
        let tls = script.tls;

        // mailin-embedded, blocking, on its own threads.
        let backend = StdListener::bind("127.0.0.1:0").unwrap();
        let backend_addr = backend.local_addr().unwrap();
        let handler = Recorder {
            shared: Arc::new(Shared {
                log: log.clone(),
                script: Mutex::new(script),
            }),
            current: None,
        };
        let (auth, login_only) = {
            let script = handler.shared.script.lock().unwrap();
            (script.auth.is_some(), script.login_only)
        };
        let mut server = Server::new(handler);
        server
            .with_name("localhost")
            .with_num_threads(2)
            .with_tcp_listener(backend);
        let mut certs = None;
        if let (Security::StartTls, Some(ca)) = (tls, &ca) {
            let dir = tempfile::tempdir().unwrap();
            let cert_path = dir.path().join("leaf.pem");
            let key_path = dir.path().join("leaf.key");
            std::fs::write(&cert_path, &ca.leaf_pem).unwrap();
            std::fs::write(&key_path, &ca.leaf_key_pem).unwrap();
            server
                .with_ssl(SslConfig::SelfSigned {
                    cert_path: cert_path.to_string_lossy().into_owned(),
                    key_path: key_path.to_string_lossy().into_owned(),
                })
                .unwrap();
            certs = Some(dir);
        }
        if auth && !login_only {
            server.with_auth(AuthMechanism::Plain);
        }
        if auth {
            server.with_auth(AuthMechanism::Login);
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });

        // The front door: counts connections, terminates implicit TLS.
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let acceptor = match (tls, &ca) {
            (Security::Implicit, Some(ca)) => Some(tls_acceptor(ca)),
            _ => None,
        };
        let counter = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = front.accept().await else {
                    return;
                };
                counter.lock().unwrap().connections += 1;
                // Relay bytes as they come: Nagle on a proxy would add a
                // delayed-ACK wait (40 ms) to every reply that is not the client's.
                let _ = client.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(backend_addr).await
                    else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    match acceptor {
                        None => {
                            let mut client = client;
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                        Some(acceptor) => {
                            if let Ok(mut client) = acceptor.accept(client).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        }
                    }
                });
            }
        });

        Self {
            addr,
            tls,
            ca,
            log,
            _certs: certs,
        }
    }

    /// A plain server that accepts everything.
    pub async fn plain() -> Self {
        Self::start(Script::default()).await
    }

    /// A config pointing at this server, as `host` (`localhost` or `127.0.0.1`).
    pub fn config(&self, host: &str) -> SmtpConfig {
        let security = match self.tls {
            Security::Plain => SmtpSecurity::None,
            Security::StartTls => SmtpSecurity::StartTls,
            Security::Implicit => SmtpSecurity::Tls,
        };
        SmtpConfig {
            host: host.to_string(),
            port: self.addr.port(),
            security,
            username: None,
            password: None,
            from: "Training Reports <training@example.com>".parse().unwrap(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The CA certificate to trust, as PEM bytes.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca.as_ref().map(|ca| ca.ca_pem.as_bytes())
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    pub fn connections(&self) -> usize {
        self.log().connections
    }

    pub fn messages(&self) -> Vec<Received> {
        self.log().messages.clone()
    }
}

/// Sets a password on a config.
pub fn with_credentials(mut config: SmtpConfig, user: &str, password: &str) -> SmtpConfig {
    config.username = Some(user.to_string());
    config.password = Some(SecretString::from(password.to_string()));
    config
}

/// A loopback port with nothing listening.
pub fn closed_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn tls_acceptor(ca: &TestCa) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(ca.leaf_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.leaf_key_der.clone())),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

struct Shared {
    log: Arc<Mutex<Log>>,
    script: Mutex<Script>,
}

/// mailin's handler: one clone per SMTP session.
#[derive(Clone)]
struct Recorder {
    shared: Arc<Shared>,
    current: Option<Received>,
}

impl Recorder {
    fn check(&self, mechanism: &'static str, user: &str, password: &str) -> Response {
        let script = self.shared.script.lock().unwrap();
        let ok = script
            .auth
            .as_ref()
            .is_some_and(|(u, p)| u == user && p == password);
        self.shared
            .log
            .lock()
            .unwrap()
            .auths
            .push((mechanism, user.to_string(), ok));
        if ok {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.current = Some(Received {
            from: from.to_string(),
            recipients: Vec::new(),
            data: Vec::new(),
        });
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let refused = self
            .shared
            .script
            .lock()
            .unwrap()
            .refuse_recipients
            .iter()
            .any(|r| r == to);
        if refused {
            return response::NO_MAILBOX;
        }
        if let Some(current) = &mut self.current {
            current.recipients.push(to.to_string());
        }
        response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        let delay = self.shared.script.lock().unwrap().data_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay); // mailin's own thread, not the runtime's
        }
        let reply = self.shared.script.lock().unwrap().data_replies.pop_front();
        match reply {
            Some((code, text)) => {
                self.shared.log.lock().unwrap().refused += 1;
                Response::custom(code, text)
            }
            None => response::START_DATA,
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(current) = &mut self.current {
            current.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let keep_data = self.shared.script.lock().unwrap().keep_data;
        let mut received = self.current.take().expect("data after MAIL FROM");
        if !keep_data {
            received.data = Vec::new();
        }
        self.shared.log.lock().unwrap().messages.push(received);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check("PLAIN", user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check("LOGIN", user, password)
    }
}
