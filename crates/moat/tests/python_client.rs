//! A real client library drives `moat serve`: PyPI's `clamd` 1.0.2 (python-clamd: `n`-prefixed
//! commands, 1024-byte INSTREAM chunks, replies read to EOF and parsed by its regex) runs the
//! same script against real clamd (the oracle) and against `moat serve` on one database, over
//! the unix socket and TCP: ping, version, instream of EICAR and of clean bytes, scan,
//! contscan and multiscan of files and a directory, stats. The results must be equal (the
//! version compared up to `ClamAV 1.4.6`, STATS by its first line).
//!
//! Skipped (with the reason printed) when python3, its `clamd` module (`pip install
//! clamd==1.0.2`, done by .ci/run) or clamd is missing, unless `MOAT_REQUIRE_ORACLE=1`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use moat_testkit::clamd::Clamd;

const SCRIPT: &str = r#"
import io, json, sys
import clamd

kind, where, files = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "unix":
    c = clamd.ClamdUnixSocket(path=where)
else:
    c = clamd.ClamdNetworkSocket(host="127.0.0.1", port=int(where))

def rel(d):
    return {k.replace(files, "FILES"): list(v) for k, v in d.items()}

out = {}
out["ping"] = c.ping()
out["version"] = c.version().split("/")[0].split("-")[0]
with open(files + "/eicar.com", "rb") as f:
    out["instream_eicar"] = rel(c.instream(io.BytesIO(f.read())))
out["instream_clean"] = rel(c.instream(io.BytesIO(b"just some clean bytes\n" * 5000)))
out["instream_empty"] = rel(c.instream(io.BytesIO(b"")))
out["scan_eicar"] = rel(c.scan(files + "/eicar.com"))
out["scan_clean"] = rel(c.scan(files + "/clean.txt"))
out["scan_missing"] = rel(c.scan(files + "/missing"))
out["contscan_dir"] = rel(c.contscan(files))
out["multiscan_dir"] = rel(c.multiscan(files))
out["stats"] = c.stats().split("\n")[0]
print(json.dumps(out, sort_keys=True))
"#;

fn python_client_present() -> bool {
    let have_clamd = Command::new("sh")
        .args(["-c", "command -v clamd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let have_module = Command::new("python3")
        .args(["-c", "import clamd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_clamd && have_module {
        return true;
    }
    if std::env::var("MOAT_REQUIRE_ORACLE").as_deref() == Ok("1") {
        panic!("python3's clamd module or clamd missing but MOAT_REQUIRE_ORACLE=1 (pip install clamd==1.0.2; apt-get install clamav-daemon)");
    }
    println!("skipped: python3's clamd module or clamd missing (pip install clamd==1.0.2; apt-get install clamav-daemon)");
    false
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// Real clamd (`name` "clamd") or `moat serve` on `root/db`.
fn start(root: &Path, name: &str) -> Clamd {
    let db = root.join("db");
    if name == "clamd" {
        return Clamd::start(root, &db, name);
    }
    let mut serve = Command::new(env!("CARGO_BIN_EXE_moat"));
    serve.arg("serve");
    Clamd::launch(serve, root, &db, name, "")
}

fn run_script(transport: &str, target: &str, files: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args([transport, target, files.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python clamd client ({transport} {target}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_clamd_client_gets_the_same_answers_from_moat_serve_as_from_clamd() {
    if !python_client_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("db")).unwrap();
    fs::create_dir_all(root.join("files/sub")).unwrap();
    let eicar = moat_testkit::eicar();
    fs::write(
        root.join("db/eicar.hdb"),
        format!("{}:{}:Moat.Test.Eicar\n", md5_hex(&eicar), eicar.len()),
    )
    .unwrap();
    let files = root.join("files");
    fs::write(files.join("eicar.com"), &eicar).unwrap();
    fs::write(files.join("sub/eicar-copy.com"), &eicar).unwrap();
    fs::write(files.join("clean.txt"), b"clean\n").unwrap();
    fs::write(files.join("sub/other.txt"), b"other\n").unwrap();

    let clamd = start(root, "clamd");
    let moat = start(root, "moat");
    for (transport, target) in [("unix", "sock"), ("tcp", "port")] {
        let arg = |s: &Clamd| match target {
            "sock" => s.sock().display().to_string(),
            _ => s.port().to_string(),
        };
        let oracle = run_script(transport, &arg(&clamd), &files);
        assert!(oracle.contains(r#""ping": "PONG""#), "{oracle}");
        assert!(
            oracle.contains(
                r#""instream_eicar": {"stream": ["FOUND", "Moat.Test.Eicar.UNOFFICIAL"]}"#
            ),
            "{oracle}"
        );
        assert_eq!(
            run_script(transport, &arg(&moat), &files),
            oracle,
            "{transport}"
        );
    }
}
