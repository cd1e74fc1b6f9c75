//! A throwaway CA and a server certificate for 127.0.0.1, made with the `openssl` CLI.

use std::path::{Path, PathBuf};

use super::{cmd, run_ok};

pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A directory holding only `ca.crt`: containers/image's `--cert-dir` layout.
    pub ca_dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut c = cmd("openssl");
    c.current_dir(dir).args(args);
    run_ok(c);
}

pub fn make_pki() -> TestPki {
    let dir = super::short_tempdir("berth-pki");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=Berth E2E Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    let ca_dir = d.join("trust");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(d.join("ca.crt"), ca_dir.join("ca.crt")).unwrap();
    TestPki {
        ca_cert: d.join("ca.crt"),
        server_cert: d.join("server.crt"),
        server_key: d.join("server.key"),
        ca_dir,
        dir,
    }
}
