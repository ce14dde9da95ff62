//! Serving certificates signed by the cluster CA, made with the `openssl` command.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::command::run;

const OPENSSL_TIMEOUT: Duration = Duration::from_secs(60);

fn openssl(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    let out = run(cmd, stdin, OPENSSL_TIMEOUT);
    if !out.success() {
        panic!("openssl failed (is it installed?):\n{out}");
    }
    out.stdout
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8; use a UTF-8 temp dir", path.display()))
}

/// A random 120-bit serial number in hex.
fn serial() -> String {
    let mut hex = String::new();
    while hex.len() < 30 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .unwrap_or_default()
                .as_nanos(),
        );
        hex.push_str(&format!("{:016x}", hasher.finish()));
    }
    // A leading 7 keeps the number positive and 120 bits long.
    format!("0x7{}", &hex[..29])
}

/// Writes a fresh RSA key and a certificate for `127.0.0.1` / `localhost` (server auth, one year)
/// signed by the CA to `cert` and `key`. Each file is replaced atomically (written beside it, then
/// renamed over it), the key first.
pub(crate) fn issue_serving_cert(ca_cert: &Path, ca_key: &Path, cert: &Path, key: &Path) {
    issue_cert(
        ca_cert,
        ca_key,
        "/CN=127.0.0.1",
        "basicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1,DNS:localhost\n",
        cert,
        key,
    );
}

/// Writes a fresh RSA key and a client certificate (client auth, one year) for `common_name` in
/// the `organisations` signed by the CA: the apiserver (`--client-ca-file`) takes the common name
/// as the username and the organisations as its groups.
pub(crate) fn issue_client_cert(
    ca_cert: &Path,
    ca_key: &Path,
    common_name: &str,
    organisations: &[&str],
    cert: &Path,
    key: &Path,
) {
    // openssl -subj: `/` and `\` are special in values.
    let escape = |v: &str| v.replace('\\', "\\\\").replace('/', "\\/");
    let mut subject = String::new();
    for o in organisations {
        subject.push_str(&format!("/O={}", escape(o)));
    }
    subject.push_str(&format!("/CN={}", escape(common_name)));
    issue_cert(
        ca_cert,
        ca_key,
        &subject,
        "basicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = clientAuth\n",
        cert,
        key,
    );
}

/// A fresh key and a certificate for `subject` with the extensions `ext`, signed by the CA.
fn issue_cert(
    ca_cert: &Path,
    ca_key: &Path,
    subject: &str,
    ext_text: &str,
    cert: &Path,
    key: &Path,
) {
    let with = |path: &Path, suffix: &str| -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (key_new, csr, ext, cert_new) = (
        with(key, ".new"),
        with(cert, ".csr"),
        with(cert, ".ext"),
        with(cert, ".new"),
    );
    std::fs::write(&ext, ext_text)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", ext.display()));
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path_str(&key_new),
        ],
        None,
    );
    openssl(
        &[
            "req",
            "-new",
            "-key",
            path_str(&key_new),
            "-subj",
            subject,
            "-out",
            path_str(&csr),
        ],
        None,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "365",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(ca_cert),
            "-CAkey",
            path_str(ca_key),
            "-set_serial",
            &serial(),
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&cert_new),
        ],
        None,
    );
    for (from, to) in [(&key_new, key), (&cert_new, cert)] {
        std::fs::rename(from, to)
            .unwrap_or_else(|e| panic!("cannot move {} to {}: {e}", from.display(), to.display()));
    }
    let _ = std::fs::remove_file(&csr);
    let _ = std::fs::remove_file(&ext);
}

/// SHA-256 fingerprint (`AA:BB:...`) of the first certificate in `pem`.
pub(crate) fn fingerprint(pem: &str) -> String {
    let out = openssl(&["x509", "-noout", "-fingerprint", "-sha256"], Some(pem));
    out.trim().rsplit('=').next().unwrap_or_default().to_owned()
}

/// The certificate a TLS server on `127.0.0.1:port` presents, as PEM.
pub(crate) fn served_cert(port: u16) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        "localhost",
    ]);
    let out = run(cmd, Some(""), OPENSSL_TIMEOUT);
    let begin = out.stdout.find("-----BEGIN CERTIFICATE-----");
    let end = out.stdout.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(b), Some(e)) => {
            out.stdout[b..e + "-----END CERTIFICATE-----".len()].to_owned() + "\n"
        }
        _ => panic!("no certificate from 127.0.0.1:{port}:\n{out}"),
    }
}

/// Base64 (standard alphabet, padded), for `caBundle`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn client_certs_name_the_user_and_its_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_cert, ca_key) = test_ca(dir.path());
        let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
        issue_client_cert(
            &ca_cert,
            &ca_key,
            "system:serviceaccount:flux-system:kustomize-controller",
            &["oidc:admins"],
            &cert,
            &key,
        );
        openssl(
            &[
                "verify",
                "-CAfile",
                path_str(&ca_cert),
                "-purpose",
                "sslclient",
                path_str(&cert),
            ],
            None,
        );
        let subject = openssl(
            &["x509", "-noout", "-subject", "-nameopt", "RFC2253"],
            Some(&std::fs::read_to_string(&cert).unwrap()),
        );
        assert_eq!(
            subject.trim(),
            "subject=CN=system:serviceaccount:flux-system:kustomize-controller,O=oidc:admins"
        );
    }

    fn test_ca(dir: &Path) -> (PathBuf, PathBuf) {
        let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test CA",
                "-keyout",
                path_str(&ca_key),
                "-out",
                path_str(&ca_cert),
            ],
            None,
        );
        (ca_cert, ca_key)
    }

    #[test]
    fn issued_certs_verify_against_the_ca_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_cert, ca_key) = test_ca(dir.path());
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        issue_serving_cert(&ca_cert, &ca_key, &cert, &key);
        let first = std::fs::read_to_string(&cert).unwrap();
        openssl(
            &[
                "verify",
                "-CAfile",
                path_str(&ca_cert),
                "-purpose",
                "sslserver",
                path_str(&cert),
            ],
            None,
        );
        let text = openssl(&["x509", "-noout", "-text"], Some(&first));
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        issue_serving_cert(&ca_cert, &ca_key, &cert, &key);
        let second = std::fs::read_to_string(&cert).unwrap();
        assert_ne!(fingerprint(&first), fingerprint(&second));
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    }
}
