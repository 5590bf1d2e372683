//! A mail-side clamd client drives `moat serve`: Debian's clamav-milter 1.4.6, driven by
//! miltertest (the MTA side of the milter protocol, scripted in Lua), scans messages through
//! `moat serve` and, as the oracle, through real clamd on the same database.
//!
//! clamav-milter talks to its `ClamdSocket` in its own way (../shared/notes/clamd-protocol.md,
//! part 2): `nPING\n` expecting exactly `PONG\n` at start; per message, over a unix socket,
//! `nFILDES\n` at the first header and the descriptor of its spooled copy at end-of-message
//! (the wait counts against CommandReadTimeout); over TCP `nINSTREAM\n` with 1424-byte chunks;
//! a reply read up to `\n`, at most 128 bytes, that must end in `: OK\n` or ` FOUND\n`.
//!
//! Each server is driven over both transports with four messages:
//! - clean (a body of many chunks): SMFIR_ACCEPT, `X-Virus-Scanned` and `X-Virus-Status:
//!   Clean` added (AddHeader Replace adds them when the message has none);
//! - EICAR as a base64 MIME attachment behind 3000 bytes of text (so the server must take the
//!   mail apart to find it): with OnInfected Reject and a RejectMsg, an SMTP reply
//!   `550 5.7.1 Rejected: <virus>` (SMFIR_REPLYCODE), `X-Virus-Status: Infected (<virus>)`,
//!   and clamav-milter's log naming Eicar-Test-Signature;
//! - slow: the MTA stalls after the headers for 3 s, longer than the servers'
//!   CommandReadTimeout and ReadTimeout (1 s), so the server gives up on the request and
//!   clamav-milter applies OnFail Defer (SMFIR_TEMPFAIL);
//! - large: twice StreamMaxLength. Over TCP the server refuses the stream (tempfail); a
//!   descriptor passed over the unix socket has no such limit (accepted, Clean).
//!
//! Everything the script reports (replies, the step that got them, headers added and their
//! values, the SMTP reply check) and clamav-milter's log of the messages must be the same
//! with `moat serve` as with clamd. Header values need no masking: clamav-milter 1.4.6's
//! `X-Virus-Scanned` is `clamav-milter 1.4.6 at <hostname>` and does not name the server.
//! Made equal, because clamd itself varies from run to run: how clamav-milter notices the
//! end of an oversized TCP stream (see [`normalize_report`] and [`normalize_log`]).
//!
//! Skipped (with the reason printed) when clamav-milter, miltertest or clamd is missing,
//! unless `MOAT_REQUIRE_ORACLE=1`.

use moat_testkit::clamd::Clamd;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the generated database gives EICAR (the name of ClamAV's official signature;
/// loose databases add `.UNOFFICIAL`).
const VIRUS: &str = "Eicar-Test-Signature.UNOFFICIAL";

/// The server-side timeouts (CommandReadTimeout, ReadTimeout) in seconds; the slow message
/// stalls for three times as long (clamd checks its timeouts in whole seconds: a 2 s stall
/// was sometimes not yet a timeout for it).
const SERVER_TIMEOUT_S: u64 = 1;

/// The servers' StreamMaxLength; the large message is twice as long.
const STREAM_MAX: usize = 64 * 1024;

/// A process killed and reaped on drop (also when the test panics).
struct Proc {
    child: Child,
    name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `name` ("clamd" or "moat") on `root/db` with the test's timeouts and stream
/// limit (moat-testkit's clamd fixture: waits until both sockets answer PING).
fn start_server(root: &Path, name: &str) -> Clamd {
    let program = if name == "clamd" {
        Command::new("clamd")
    } else {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        c.arg("serve");
        c
    };
    let limits = format!(
        "CommandReadTimeout {SERVER_TIMEOUT_S}\nReadTimeout {SERVER_TIMEOUT_S}\n\
         StreamMaxLength {STREAM_MAX}\n"
    );
    Clamd::launch(program, root, &root.join("db"), name, &limits)
}

/// A clamav-milter in the foreground, its milter socket, and its log file.
struct Milter {
    proc: Proc,
    sock: PathBuf,
    log: PathBuf,
}

/// Starts clamav-milter on a unix milter socket, scanning through `clamd_socket`
/// (`unix:PATH` or `tcp:HOST:PORT`, clamav-milter's syntax), with the settings of a site that
/// rejects infected mail. No PID file, no User (it runs as the test's user).
fn start_milter(root: &Path, tag: &str, clamd_socket: &str) -> Milter {
    let sock = root.join(format!("{tag}-milter.sock"));
    let log = root.join(format!("{tag}-milter.log"));
    let conf = root.join(format!("{tag}-milter.conf"));
    fs::write(
        &conf,
        format!(
            "MilterSocket unix:{}\nClamdSocket {clamd_socket}\nForeground yes\n\
             OnClean Accept\nOnInfected Reject\nOnFail Defer\nRejectMsg Rejected: %v\n\
             AddHeader Replace\nLogFile {}\nLogVerbose yes\nLogInfected Full\nLogClean Full\n\
             TemporaryDirectory {}\n",
            sock.display(),
            log.display(),
            root.display()
        ),
    )
    .unwrap();
    let child = Command::new("clamav-milter")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("clamav-milter");
    Milter {
        proc: Proc {
            child,
            name: format!("clamav-milter ({tag})"),
        },
        sock,
        log,
    }
}

/// Waits for clamav-milter's start-up probe of its server (`nPING\n`, which must be answered
/// exactly `PONG\n`) and fails unless it succeeded: a server it finds dead gets no message
/// until a later probe, so every message would fail for that reason instead.
fn wait_for_probe(milter: &Milter) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = fs::read_to_string(&milter.log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.starts_with("Probe for slot 1")) {
            assert!(
                line.ends_with("success"),
                "{}: {line}\n{log}",
                milter.proc.name
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no probe logged\n{log}",
            milter.proc.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Lua string literal of `s` (every byte as a `\ddd` escape outside plain ASCII text).
fn lua_str(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => write!(out, "\\{}", b as char).unwrap(),
            b' '..=b'~' => out.push(b as char),
            _ => write!(out, "\\{b:03}").unwrap(),
        }
    }
    out.push('"');
    out
}

/// The body of the infected message: 3000 bytes of text, then EICAR as a base64 attachment.
fn infected_body() -> String {
    use base64::Engine as _;
    let attachment = base64::engine::general_purpose::STANDARD.encode(moat_testkit::eicar());
    let text = "Please find the report attached, as discussed.\r\n".repeat(60);
    format!(
        "--XYZ\r\nContent-Type: text/plain\r\n\r\n{text}--XYZ\r\n\
         Content-Type: application/octet-stream; name=\"report.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"report.com\"\r\n\r\n\
         {attachment}\r\n--XYZ--\r\n"
    )
}

/// The miltertest script: one milter connection per message. It prints `<message> <key>=<value>`
/// lines (what the test compares): the milter's first reply other than SMFIR_CONTINUE and the
/// step that got it (`reply=t at=body`), or the step that failed (`failed=eom`); after
/// end-of-message the headers added and the SMTP reply check.
fn script(milter_sock: &Path) -> String {
    let clean_line = "A clean line of an ordinary message, nothing to see here.\r\n";
    let clean_chunks: Vec<String> = (0..8).map(|_| lua_str(&clean_line.repeat(10))).collect();
    format!(
        r#"
local sock = {sock}
local Stop = {{}}
local function step(name, what, conn, e)
  if e ~= nil then mt.echo(name .. " failed=" .. what .. " (" .. e .. ")"); error(Stop) end
  local r = mt.getreply(conn)
  if what == "eom" or r ~= SMFIR_CONTINUE then
    mt.echo(name .. " reply=" .. string.char(r) .. " at=" .. what)
    if what ~= "eom" then error(Stop) end
  end
end
local function message(name, headers, chunks, stall)
  local conn = mt.connect(sock, 100, 0.1)
  if conn == nil then error("connect to " .. sock .. " failed") end
  step(name, "conninfo", conn, mt.conninfo(conn, "client.example", "192.0.2.1"))
  mt.macro(conn, SMFIC_MAIL, "i", "Q" .. name)
  step(name, "mailfrom", conn, mt.mailfrom(conn, "<sender@example.org>"))
  step(name, "rcptto", conn, mt.rcptto(conn, "<rcpt@example.net>"))
  for _, h in ipairs(headers) do step(name, "header", conn, mt.header(conn, h[1], h[2])) end
  if not mt.test_option(conn, SMFIP_NOEOH) then step(name, "eoh", conn, mt.eoh(conn)) end
  if stall > 0 then mt.sleep(stall) end
  for _, c in ipairs(chunks) do step(name, "body", conn, mt.bodystring(conn, c)) end
  step(name, "eom", conn, mt.eom(conn))
  for _, h in ipairs({{"X-Virus-Scanned", "X-Virus-Status"}}) do
    mt.echo(name .. " added " .. h .. "=" .. tostring(mt.eom_check(conn, MT_HDRADD, h)))
    mt.echo(name .. " changed " .. h .. "=" .. tostring(mt.eom_check(conn, MT_HDRCHANGE, h)))
    mt.echo(name .. " value " .. h .. "=" .. tostring(mt.getheader(conn, h, 0)))
  end
  mt.echo(name .. " reply550=" .. tostring(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
    "Rejected: {virus}")))
  mt.disconnect(conn)
end
local function run(name, ...)
  local ok, err = pcall(message, name, ...)
  if not ok and err ~= Stop then mt.echo("ERROR " .. name .. ": " .. tostring(err)) end
end
local plain = {{{{"From", "a@example.org"}}, {{"To", "b@example.net"}}, {{"Subject", "hello"}}}}
run("clean", plain, {{{clean}}}, 0)
run("infected", {{{{"From", "a@example.org"}}, {{"To", "b@example.net"}},
  {{"Subject", "the report"}}, {{"MIME-Version", "1.0"}},
  {{"Content-Type", "multipart/mixed; boundary=\"XYZ\""}}}}, {{{infected}}}, 0)
run("slow", plain, {{{clean}}}, {stall})
local large = {{}}
for i = 1, {large_chunks} do large[i] = {chunk} end
run("large", plain, large, 0)
"#,
        sock = lua_str(&format!("unix:{}", milter_sock.display())),
        virus = VIRUS,
        clean = clean_chunks.join(", "),
        infected = lua_str(&infected_body()),
        stall = 3 * SERVER_TIMEOUT_S,
        chunk = clean_chunks[0],
        large_chunks = 2 * STREAM_MAX / (clean_line.len() * 10),
    )
}

/// What one run produced: the script's report lines and clamav-milter's log lines about the
/// messages (without its start-up lines, which name the socket and the time).
#[derive(Debug, PartialEq)]
struct Outcome {
    report: Vec<String>,
    log: Vec<String>,
}

impl Outcome {
    fn value(&self, key: &str) -> &str {
        let prefix = format!("{key}=");
        self.report
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{key}` in {:#?}", self.report))
    }
}

/// Runs the script through a fresh clamav-milter that scans through `clamd_socket`.
fn drive(root: &Path, tag: &str, clamd_socket: &str) -> Outcome {
    let milter = start_milter(root, tag, clamd_socket);
    wait_for_probe(&milter);
    let lua = root.join(format!("{tag}.lua"));
    fs::write(&lua, script(&milter.sock)).unwrap();
    let out = Command::new("miltertest")
        .arg("-s")
        .arg(&lua)
        .output()
        .expect("miltertest");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{} {tag}: miltertest failed ({}):\n{report}\n{}",
        milter.proc.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    drop(milter.proc);
    let log = fs::read_to_string(&milter.log).unwrap_or_default();
    println!("{tag}-milter.log:\n{log}");
    Outcome {
        report: normalize_report(&report),
        log: normalize_log(&log),
    }
}

/// The script's report, with the large message's outcome reduced to its reply when that is a
/// SMFIR_TEMPFAIL: over TCP the servers (clamd as well as moat serve) send their size-limit
/// error and close while clamav-milter is still streaming, and whether clamav-milter notices
/// at a body chunk or only at end-of-message (its sends still succeeding) is a race.
fn normalize_report(report: &str) -> Vec<String> {
    let mut tempfailed = false;
    let mut out = Vec::new();
    for line in report.lines() {
        if line.starts_with("large reply=t ") {
            tempfailed = true;
            out.push("large reply=t".to_string());
        } else if !(tempfailed && line.starts_with("large ")) {
            out.push(line.to_string());
        }
    }
    out
}

/// clamav-milter's log without its start-up lines (they name the socket and the time), with
/// its ways of telling that the server ended a stream early made one (see
/// [`normalize_report`]; a send fails with EPIPE or ECONNRESET depending on whether the server
/// had read every byte that arrived before it closed, or the reply is read at end-of-message).
fn normalize_log(log: &str) -> Vec<String> {
    const STREAM_ENDED: [&str; 4] = [
        "ERROR: send failed: Broken pipe",
        "ERROR: send failed: Connection reset by peer",
        "ERROR: Streaming failed",
        "ERROR: Unknown reply from clamd",
    ];
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        if line.starts_with("+++ Started")
            || line.contains("added to the pool")
            || line.starts_with("Probe for slot")
        {
            continue;
        }
        let line = if STREAM_ENDED.contains(&line) {
            "ERROR: <the server ended the stream>"
        } else {
            line
        };
        if out.last().map(String::as_str) != Some(line) {
            out.push(line.to_string());
        }
    }
    out
}

/// What the clamd-protocol side must make clamav-milter do, whichever server answers.
fn assert_milter_outcome(o: &Outcome, what: &str) {
    let errors: Vec<_> = o.report.iter().filter(|l| l.starts_with("ERROR")).collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
    // SMFIR_ACCEPT with both headers added.
    assert_eq!(o.value("clean reply"), "a at=eom", "{what}: {o:#?}");
    assert_eq!(o.value("clean added X-Virus-Status"), "true", "{what}");
    assert_eq!(o.value("clean value X-Virus-Status"), "Clean", "{what}");
    assert_eq!(o.value("clean added X-Virus-Scanned"), "true", "{what}");
    assert!(
        o.value("clean value X-Virus-Scanned")
            .starts_with("clamav-milter "),
        "{what}: {o:#?}"
    );
    assert_eq!(o.value("clean reply550"), "false", "{what}");
    // SMFIR_REPLYCODE: the reject with RejectMsg, the virus name from the server's reply.
    assert_eq!(o.value("infected reply"), "y at=eom", "{what}: {o:#?}");
    assert_eq!(o.value("infected reply550"), "true", "{what}: {o:#?}");
    assert_eq!(
        o.value("infected value X-Virus-Status"),
        format!("Infected ({VIRUS})"),
        "{what}"
    );
    assert!(
        o.log
            .iter()
            .any(|l| l.contains("Qinfected") && l.contains("infected by Eicar-Test-Signature")),
        "{what}: clamav-milter's log does not name the virus: {:#?}",
        o.log
    );
    assert!(
        o.log.iter().any(|l| l.starts_with("Clean message Qclean")),
        "{what}: {:#?}",
        o.log
    );
    // SMFIR_TEMPFAIL: the server gave up on the stalled request and closed the connection,
    // so clamav-milter's next write fails (over TCP while streaming the body, over a unix
    // socket when it passes the descriptor at end-of-message): OnFail Defer.
    assert!(o.value("slow reply").starts_with("t at="), "{what}: {o:#?}");
    assert!(
        o.log
            .iter()
            .any(|l| l.contains("FD send failed: Broken pipe")
                || l.contains("<the server ended the stream>")),
        "{what}: {:#?}",
        o.log
    );
    // Longer than StreamMaxLength: a limit of INSTREAM only, so over TCP the server refuses
    // the stream (OnFail Defer), while a descriptor passed over the unix socket is scanned.
    if what.ends_with("-tcp") {
        assert_eq!(o.value("large reply"), "t", "{what}: {o:#?}");
    } else {
        assert_eq!(o.value("large reply"), "a at=eom", "{what}: {o:#?}");
        assert_eq!(o.value("large value X-Virus-Status"), "Clean", "{what}");
    }
}

#[test]
fn clamav_milter_gets_the_same_verdicts_from_moat_serve_as_from_clamd() {
    if !moat_testkit::oracle(
        &["clamav-milter", "miltertest", "clamd"],
        "apt-get install clamav-milter miltertest clamav-daemon",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("db")).unwrap();
    // A body signature (not a hash), so it matches the decoded attachment wherever it sits.
    fs::write(
        root.join("db/eicar.ndb"),
        format!(
            "{}:0:*:{}\n",
            VIRUS.trim_end_matches(".UNOFFICIAL"),
            hex::encode(moat_testkit::eicar())
        ),
    )
    .unwrap();

    let (clamd, moat) = std::thread::scope(|s| {
        let clamd = s.spawn(|| start_server(root, "clamd"));
        let moat = s.spawn(|| start_server(root, "moat"));
        (clamd.join().unwrap(), moat.join().unwrap())
    });
    // The four runs stall for the slow message; they run side by side.
    let runs: Vec<(String, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = [&clamd, &moat]
            .into_iter()
            .zip(["clamd", "moat"])
            .flat_map(|(server, name)| {
                [
                    (format!("{name}-unix"), server.unix()),
                    (format!("{name}-tcp"), server.tcp()),
                ]
            })
            .map(|(tag, socket)| s.spawn(move || (tag.clone(), drive(root, &tag, &socket))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (tag, outcome) in &runs {
        println!("{tag}: {outcome:#?}");
    }
    for name in ["clamd", "moat"] {
        let log = fs::read_to_string(root.join(format!("{name}.log"))).unwrap_or_default();
        println!("{name}.log:\n{log}");
    }
    for (tag, outcome) in &runs {
        assert_milter_outcome(outcome, tag);
    }
    for transport in ["unix", "tcp"] {
        let get = |name: &str| {
            let tag = format!("{name}-{transport}");
            &runs.iter().find(|(t, _)| *t == tag).unwrap().1
        };
        assert_eq!(
            get("moat"),
            get("clamd"),
            "{transport}: moat serve vs clamd"
        );
    }
}
