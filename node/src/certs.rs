//! `warrant certs dev`: a development CA, a certificate per node and one client certificate,
//! made with rcgen. `warrant dev`, `local-cluster` and `demo` make theirs the same way, so a
//! development cluster is TLS end to end like a production one.
//!
//! A node's certificate names it (`node-<id>.warrant.internal`, which its peers check) and the
//! addresses clients dial (`localhost`, `127.0.0.1`, `::1`, and any `--host`). It is valid for
//! both server and client authentication: a node presents it to clients and to its peers.
//! Private keys are written mode 0600. Production clusters use certificates from their own CA,
//! with the same names.

use std::{
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Nodes `certs dev` makes certificates for, at most.
pub const DEV_NODES_MAX: u64 = 16;
/// How long development certificates are valid.
const DEV_VALIDITY_DAYS: i64 = 365;
/// The name the development client certificate carries.
pub const DEV_CLIENT_NAME: &str = "client.warrant.internal";

/// The files of one node's TLS material, as `[tls]` names them.
#[derive(Clone, Debug)]
pub struct NodeFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where `make` wrote everything.
#[derive(Clone, Debug)]
pub struct DevCerts {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl DevCerts {
    /// Node `node_id`'s files in `dir`.
    pub fn node(&self, node_id: u64) -> NodeFiles {
        NodeFiles {
            ca_file: self.ca_file.clone(),
            cert_file: self.dir.join(format!("node-{node_id}.pem")),
            key_file: self.dir.join(format!("node-{node_id}-key.pem")),
        }
    }
}

/// Makes a CA, certificates for nodes `1..=nodes`, a client certificate and one certificate per
/// operator in `operators` (`operator-<id>.pem`, naming `<id>.operator.warrant.internal`) in
/// `dir` (created mode 0700). Existing files are replaced.
pub fn make(
    dir: &Path,
    nodes: u64,
    hosts: &[String],
    operators: &[String],
) -> anyhow::Result<DevCerts> {
    anyhow::ensure!(
        (1..=DEV_NODES_MAX).contains(&nodes),
        "--nodes is {nodes}; allowed: 1 to {DEV_NODES_MAX}"
    );
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let ca = ca()?;
    let certs = DevCerts {
        dir: dir.to_path_buf(),
        ca_file: dir.join("ca.pem"),
        client_cert_file: dir.join("client.pem"),
        client_key_file: dir.join("client-key.pem"),
    };
    write(&certs.ca_file, ca.pem().as_bytes(), 0o644)?;
    for node_id in 1..=nodes {
        let mut names = vec![
            warrant_raft::node_name(node_id),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        names.extend(hosts.iter().cloned());
        let files = certs.node(node_id);
        leaf(&ca, names, &files.cert_file, &files.key_file)?;
    }
    leaf(
        &ca,
        vec![DEV_CLIENT_NAME.to_string()],
        &certs.client_cert_file,
        &certs.client_key_file,
    )?;
    for operator in operators {
        warrant_identity::limits::validate_operator_id("--operator", operator)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        leaf(
            &ca,
            vec![format!(
                "{operator}.{}",
                warrant_api::transport::OPERATOR_NAME_DOMAIN
            )],
            &dir.join(format!("operator-{operator}.pem")),
            &dir.join(format!("operator-{operator}-key.pem")),
        )?;
    }
    Ok(certs)
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back, so a peer whose clock is a little behind accepts it at once.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(DEV_VALIDITY_DAYS);
}

fn ca() -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "Warrant development CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

/// A certificate for `names` (the first is its common name), valid for server and client
/// authentication, signed by `ca`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: Vec<String>,
    cert_file: &Path,
    key_file: &Path,
) -> anyhow::Result<()> {
    let common_name = names.first().cloned().unwrap_or_default();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    write(key_file, key.serialize_pem().as_bytes(), 0o600)?;
    write(cert_file, cert.pem().as_bytes(), 0o644)
}

/// Writes `bytes` to `path` with `mode`, through a temporary file renamed into place, so a node
/// watching the file never reads half of it.
fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_name_their_node_and_the_client_one_names_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = make(dir.path(), 3, &["warrant.example".to_string()], &[]).expect("make");
        for node_id in 1..=3 {
            let pem = std::fs::read(certs.node(node_id).cert_file).expect("read cert");
            let der = rustls_pki_types_der(&pem);
            assert_eq!(warrant_raft::node_id_of_certificate(&der), Some(node_id));
        }
        let client = rustls_pki_types_der(&std::fs::read(&certs.client_cert_file).expect("read"));
        assert_eq!(warrant_raft::node_id_of_certificate(&client), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.node(1).key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "keys are private");
        assert!(make(dir.path(), 0, &[], &[]).is_err());
        assert!(make(dir.path(), DEV_NODES_MAX + 1, &[], &[]).is_err());
        assert!(make(dir.path(), 1, &[], &["Not-A-Label".to_string()]).is_err());
    }

    fn rustls_pki_types_der(pem: &[u8]) -> Vec<u8> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(pem)
            .expect("a PEM certificate")
            .to_vec()
    }
}
