//! Real ClamAV databases and generated lines of every form, loaded by `moat scan` and by
//! clamscan (the oracle): the same "Known viruses", the same refusals, and for lines
//! both accept the same verdict on a generated file.
//!
//! Needs `../shared/sigs/clamav-real` (skipped when absent unless `MOAT_REQUIRE_SHARED=1`)
//! and clamscan (skipped when absent unless `MOAT_REQUIRE_ORACLE=1`). main-even.ldb is
//! loaded twice per tool (alone, and with its directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What one load-and-scan run showed: refused (rc 2), Known viruses, the file found.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    refused: bool,
    known: Option<u64>,
    found: bool,
}

fn run(tool: &str, db: &Path, options: &[&str], file: &Path) -> Run {
    let mut c = if tool == "moat" {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        c.arg("scan");
        c
    } else {
        Command::new("clamscan")
    };
    let out: Output = c
        .args(options)
        .arg("-d")
        .arg(db)
        .arg(file)
        .output()
        .expect("run the scanner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let known = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Known viruses: "))
        .and_then(|n| n.trim().parse().ok());
    let refused = out.status.code() == Some(2);
    Run {
        refused,
        // A refused load prints what was loaded before the failure: not compared.
        known: if refused { None } else { known },
        found: stdout.contains(" FOUND"),
    }
}

#[test]
fn real_databases_count_as_clamscan_counts() {
    let Some(dir) = moat_testkit::real_sigs() else {
        return;
    };
    if !moat_testkit::clamscan() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let tmp = tempfile::tempdir().unwrap();
    let null = &tmp.path().join("clean.txt");
    std::fs::write(null, "a clean file\n").unwrap();
    let mut cases: Vec<(PathBuf, Vec<&str>)> = files.into_iter().map(|f| (f, vec![])).collect();
    cases.push((dir.clone(), vec![]));
    cases.push((dir.clone(), vec!["--detect-pua"]));
    for f in ["daily.hdu", "daily.hsu", "daily.msu"] {
        cases.push((dir.join(f), vec!["--detect-pua"]));
    }
    let bytecode = dir.join("bytecode-v268");
    cases.push((bytecode.clone(), vec![]));
    cases.push((bytecode, vec!["--bytecode-unsigned"]));
    let mut report = Vec::new();
    for (db, options) in &cases {
        let clam = run("clamscan", db, options, null);
        let moat = run("moat", db, options, null);
        report.push(format!(
            "{} {options:?}: clamscan {clam:?}, moat {moat:?}",
            db.display()
        ));
        assert!(
            !clam.refused && clam.known.is_some(),
            "clamscan: {}",
            report.last().unwrap()
        );
        assert_eq!(moat, clam, "{}", report.last().unwrap());
    }
    println!("{}", report.join("\n"));
}

/// A binary file (no normalized copy) holding what the generated lines look for.
fn sample(dir: &Path) -> PathBuf {
    let mut data = b"AB\x00\x01\x02\x03xxAABBxxaabbxxCCDDxxccddxxaajjaaxxaafggfaaxx".to_vec();
    data.extend_from_slice(b"A\x00A\x00B\x00B\x00xx.AABB.xxAABBz");
    let path = dir.join("sample.bin");
    std::fs::write(&path, data).unwrap();
    path
}

/// Lines of every form of the signature manual: offsets, target-description keys,
/// expression forms, subsignature fields and modifiers, nested alternates, PCRE flags
/// and triggers, and one line of each database extension.
fn generated() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    for off in [
        "*",
        "8",
        "9",
        "8,4",
        "EOF-30",
        "EOF-30,20",
        "EP+0",
        "EP-1",
        "S0+0",
        "SE0",
        "SL+0",
        "VI",
        "",
        "x",
        "EOF-",
    ] {
        v.push(("ldb", format!("O;Engine:51-255,Target:0;0;{off}:41414242")));
        v.push(("ldb", format!("O;Engine:51-255,Target:1;0;{off}:41414242")));
        v.push(("ndb", format!("O:0:{off}:41414242")));
    }
    for tdb in [
        "Target:0",
        "Engine:51-255,Target:0,FileSize:10-1000",
        "Engine:51-255,Target:0,FileSize:1-10",
        "Engine:51-255,Target:1,EntryPoint:0-100",
        "Engine:51-255,Target:1,NumberOfSections:1-5",
        "Engine:51-255,Target:0,Container:CL_TYPE_ZIP",
        "Engine:51-255,Target:0,Container:CL_TYPE_FOO",
        "Engine:51-255,Target:0,Intermediates:CL_TYPE_ZIP>CL_TYPE_ANY",
        "Engine:51-255,Target:1,IconGroup1:X,IconGroup2:Y",
        "Engine:51-255,HandlerType:CL_TYPE_PDF,Target:0",
        "Engine:51-255,HandlerType:CL_TYPE_FOO,Target:0",
        "HandlerType:CL_TYPE_PDF,Target:0",
        "Engine:51-255,Target:0,Foo:1",
        "Engine:300-400,Target:0",
        "Target:20",
        "Engine:51-255",
    ] {
        v.push(("ldb", format!("T;{tdb};0;41414242")));
    }
    for expr in [
        "0&1",
        "0|2",
        "0&1|2",
        "(0|2)&1",
        "0=2",
        "0>1",
        "0<3",
        "0==2",
        "0>=1",
        "0=>1",
        "0=<3",
        "0<>1",
        "0===2",
        "(0|1)>2,2",
        "(0|1)=3,",
        "0=2,1",
        "0=",
        "0&&1",
        "(0&1",
        "0&1)",
        "0&3",
    ] {
        v.push((
            "ldb",
            format!("E;Target:0;{expr};41414242;43434444;45454646"),
        ));
    }
    for sub in [
        "41414242::i",
        "61616262::i",
        "41414242::w",
        "41414242::wa",
        "41414242::f",
        "41414242::iwfa",
        "41414242::q",
        "41414242:x:i",
        "8:61616262::i",
        "41414242::i*43434444::i",
        "41414242::i*4343",
        "41414242:x:y:z:w",
        "41414242:::i",
        "41414242::::i",
        "0:41414242:a:b:c",
        "6161(6a6a|66(6767|6868)66|6969)6161",
        "aabb(cc|(dd|ee))1122",
        "6161(6a6a|66{2}66)6161",
        "6161(6a6a|66{1-2}66)6161",
        "6161(6a6a|66!(67|68)66)6161",
        "6161!(6a6a|6767)6161",
        "4141(4242|4343)4343::i",
        "${1-2}12$",
        "0(>>2#db2#>0)",
    ] {
        v.push(("ldb", format!("S;Engine:51-255,Target:0;0;{sub}")));
    }
    for pcre in [
        "0/AABB/",
        "0/aabb/i",
        "0/AABB/g",
        "8:0/AABB/",
        "8:0/AABB/r",
        "6,4:0/AABB/e",
        "0/A.B/s",
        "0/^xx/m",
        "0/A A B B/x",
        "0/AA+/U",
        "0/AABB$/E",
        "0/AABB/A",
        "0/AABB/q",
        "0/(/",
        "1/AABB/",
    ] {
        v.push((
            "ldb",
            format!("P;Engine:81-255,Target:0;0&1;41414242;{pcre}"),
        ));
    }
    for (ext, line) in [
        ("ign", "x.ndb:1:S1"),
        ("ign", "S1:xyz"),
        ("ign2", "S1"),
        ("cdb", "N:CL_TYPE_ZIP:*:abc\\.exe$:*:*:*:*:*:"),
        ("cdb", "N:CL_TYPE_ZIP:*:abc:*:*:*:*:*"),
        ("idb", "N:G1:G2:00"),
        ("ftm", "0:0:1f8b:GZip:CL_TYPE_ANY:CL_TYPE_GZ"),
        ("ftm", "0:0:1f8b:GZip:CL_TYPE_ANY:CL_TYPE_FOO"),
        ("crb", "garbage"),
        ("pdb", "H:example.com"),
        ("pdb", "X:a:b"),
        ("wdb", "X:.+\\.a\\.com:.+\\.b\\.com"),
        ("wdb", "H:a.com"),
        ("gdb", "S:F:00"),
        ("cfg", "garbage"),
        ("hdu", "garbage"),
        ("msb", "8:44d88612fea8a8f36de82e1278abb02f:N"),
        ("hsb", "44d88612fea8a8f36de82e1278abb02f:*:N:73"),
    ] {
        v.push((ext, line.to_owned()));
    }
    v
}

#[test]
fn generated_lines_load_and_match_as_clamscan() {
    if !moat_testkit::clamscan() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = sample(tmp.path());
    let mut mismatches = Vec::new();
    let lines = generated();
    for (i, (ext, line)) in lines.iter().enumerate() {
        let db = tmp.path().join(format!("g{i}.{ext}"));
        std::fs::write(&db, format!("{line}\n")).unwrap();
        let clam = run("clamscan", &db, &[], &file);
        let moat = run("moat", &db, &[], &file);
        if clam != moat {
            mismatches.push(format!(
                "{ext}: {line}\n  clamscan {clam:?}\n  moat     {moat:?}"
            ));
        }
        std::fs::remove_file(&db).unwrap();
    }
    println!("{} generated lines compared", lines.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// All of `../shared/sigs/clamav-real` on ClamAV's own test files (Debian's
/// clamav-testfiles): moat scans every one of them (no crash, no error line), and on the
/// files of the formats it opens (the containers test's list) finds what clamscan finds,
/// by name. The real signatures reach the matcher with short buffers here (the HTML copies
/// of container members): clam.chm made the engine panic before.
#[test]
fn real_databases_on_clamav_testfiles_match_clamscan() {
    use moat_testkit::testfiles::{oracle_ready, DIR, SUPPORTED as OPENED};
    let Some(db) = moat_testkit::real_sigs() else {
        return;
    };
    if !oracle_ready() {
        return;
    }
    let scan = |tool: &str| -> Vec<String> {
        let mut c = if tool == "moat" {
            let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
            c.arg("scan");
            c
        } else {
            Command::new("clamscan")
        };
        let out = c
            .args(["--no-summary", "-r", "-d"])
            .arg(&db)
            .arg(DIR)
            .output()
            .expect("run the scanner");
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{tool} exited {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let (moat, clam) = (scan("moat"), scan("clamscan"));
    assert!(
        !moat.iter().any(|l| l.ends_with(" ERROR")),
        "moat: {moat:#?}"
    );
    let opened = |l: &&String| {
        OPENED
            .iter()
            .any(|f| l.starts_with(&format!("{DIR}/{f}: ")))
    };
    let (m, c): (Vec<_>, Vec<_>) = (
        moat.iter().filter(opened).collect(),
        clam.iter().filter(opened).collect(),
    );
    assert_eq!(m.len(), OPENED.len(), "moat: {moat:#?}");
    assert_eq!(m, c, "moat vs clamscan on the formats moat opens");
}
