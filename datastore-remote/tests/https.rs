//! `https://`: the client over TLS, against `serve`'s router behind a TLS
//! terminator (as a proxy would put it), trusting a private CA through
//! `RemoteConfig::ca_certificate`; without it the certificate is refused.

use std::process::Command;
use std::sync::Arc;

use datastore_core::{Error, Precondition, Profile};
use datastore_remote::{RemoteConfig, RemoteStore};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA and a certificate it signed for localhost and 127.0.0.1,
/// made by the openssl program: (CA PEM, server certificate PEM, server
/// key PEM).
fn certificates(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("this test needs the openssl program");
        assert!(status.success(), "openssl {args:?} failed");
    };
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=datastore test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.crt",
    ]);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    (read("ca.crt"), read("server.crt"), read("server.key"))
}

/// Serves the HTTP API over TLS on a loopback port; returns its URL and
/// the sender that keeps it going.
async fn serve_tls(crt: &[u8], key: &[u8]) -> (String, tokio::sync::watch::Sender<bool>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = datastore_http::router(
        datastore_memory::open(),
        &datastore_http::ServerConfig::default(),
        stopped,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}"), stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, crt, key) = certificates(dir.path());
    let (url, _running) = serve_tls(&crt, &key).await;

    let mut config = RemoteConfig::new(&url);
    config.ca_certificate = Some(ca);
    let ds = RemoteStore::open(config).await.unwrap();
    let put = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(ds.profiles().get_by_username("alice").await.unwrap(), put);

    // Not trusted: refused at open, saying why.
    match RemoteStore::open(RemoteConfig::new(&url)).await {
        Err(Error::Unavailable { source, .. }) | Err(Error::Backend { source, .. }) => {
            let text = format!("{source:?}");
            assert!(text.to_lowercase().contains("certificate"), "{text}");
        }
        other => panic!("an untrusted certificate: {other:?}"),
    }
    // Not a certificate at all: Invalid naming it.
    let mut bad = RemoteConfig::new(&url);
    bad.ca_certificate = Some(b"not a certificate".to_vec());
    match RemoteStore::connect(bad) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "ca_certificate"),
        other => panic!("{other:?}"),
    }
}
