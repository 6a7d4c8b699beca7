//! The path the admission webhook issue needs: a ValidatingWebhookConfiguration with
//! `url: https://127.0.0.1:PORT` and a caBundle reaches an HTTPS server in the test,
//! and its denial comes back through `kubectl apply`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Json;
use axum::routing::post;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use posture_e2e::cluster::shared;
use posture_e2e::pki::CertificateAuthority;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// Denies ConfigMaps whose name starts with `denied-`, allows everything else.
async fn validate(Json(review): Json<Value>) -> Json<Value> {
    let request = &review["request"];
    let name = request["name"].as_str().unwrap_or_default();
    let allowed = !name.starts_with("denied-");
    let mut response = json!({"uid": request["uid"], "allowed": allowed});
    if !allowed {
        response["status"] =
            json!({"code": 403, "message": format!("posture-e2e: {name} is not allowed here")});
    }
    Json(
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    )
}

/// Serves `validate` over TLS on a free loopback port; returns the port.
async fn serve(cert_pem: &str, key_pem: &str) -> Result<u16> {
    let certs =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route("/validate", post(validate));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_denial_comes_back_through_kubectl_apply() -> Result<()> {
    let cluster = shared();
    let ns = cluster.namespace("webhook")?;
    let ca = CertificateAuthority::new("posture-e2e-webhook-ca")?;
    let (cert, key) = ca.issue_server("posture-e2e-webhook", &["127.0.0.1"])?;
    let port = serve(&cert, &key).await?;

    let config_name = format!("posture-e2e-{}", ns.name);
    let webhook = format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {config_name}
webhooks:
  - name: deny.e2e.posture.dev
    clientConfig:
      url: https://127.0.0.1:{port}/validate
      caBundle: {ca_bundle}
    rules:
      - apiGroups: [\"\"]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [configmaps]
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {ns}
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    timeoutSeconds: 5
",
        ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca.pem()),
        ns = ns.name,
    );
    cluster.kubectl_ok(&["apply", "-f", "-"], Some(&webhook))?;

    // The apiserver picks the configuration up from its informer a moment later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let stderr = loop {
        attempt += 1;
        let name = format!("denied-{attempt}");
        let out = tokio::task::block_in_place(|| {
            cluster.kubectl(
                &[
                    "create",
                    "configmap",
                    &name,
                    "-n",
                    &ns,
                    "--from-literal=k=v",
                ],
                None,
            )
        })?;
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never denied a ConfigMap"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        stderr.contains("admission webhook \"deny.e2e.posture.dev\" denied the request")
            && stderr.contains(&format!(
                "posture-e2e: denied-{attempt} is not allowed here"
            )),
        "{stderr}"
    );
    // `kubectl apply` gets the same answer, and allowed objects still go through.
    let denied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: denied-by-apply\n";
    let out = tokio::task::block_in_place(|| {
        cluster.kubectl(&["apply", "-n", &ns, "-f", "-"], Some(denied))
    })?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("posture-e2e: denied-by-apply is not allowed here"),
        "{out:?}"
    );
    let allowed = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n";
    tokio::task::block_in_place(|| {
        cluster.kubectl_ok(&["apply", "-n", &ns, "-f", "-"], Some(allowed))
    })?;

    cluster.kubectl_ok(
        &["delete", "validatingwebhookconfiguration", &config_name],
        None,
    )?;
    Ok(())
}
