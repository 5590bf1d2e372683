//! The manual pages: generated from the command line's own definition (clap_mangen), so
//! that they never disagree with `--help`, plus the notes below (files, signals, systemd,
//! exit status), which `--help` shows too. `moat man DIR` (hidden) writes them; the
//! repository keeps them in `dist/man/` for the Debian package, and a test checks that
//! they are current.

use std::path::Path;

use roff::{bold, roman, Roff};

/// A section of notes: a title and its items (`term`, `text`); an empty term is a plain
/// paragraph.
pub type Section = (&'static str, &'static [(&'static str, &'static str)]);

/// moat(1) and `moat --help`.
pub const MOAT: &[Section] = &[
    (
        "FILES",
        &[
            ("/etc/clamav/clamd.conf", "Read by moat watch and moat serve (-c FILE for another); never written by moat or its package."),
            ("/var/lib/clamav", "The signature database (DatabaseDirectory), kept current by freshclam."),
            ("/lib/systemd/system/moat-watch.service", "The on-access service; see moat-watch(1)."),
            ("/lib/systemd/system/moat-serve.service, moat-serve.socket", "The clamd-compatible service and its socket; see moat-serve(1)."),
        ],
    ),
    (
        "SEE ALSO",
        &[("", "moat-scan(1), moat-watch(1), moat-serve(1), clamd.conf(5), freshclam(1), clamscan(1), systemd.service(5)")],
    ),
];

/// moat-watch(1) and `moat watch --help`.
pub const WATCH: &[Section] = &[
    (
        "CONFIGURATION",
        &[("", "Reads the OnAccess* keys of clamd.conf (OnAccessIncludePath, OnAccessExcludePath, OnAccessPrevention, OnAccessExcludeUID...), DatabaseDirectory and Log*; flags override them. Runs in the foreground; as a service: systemctl enable --now moat-watch.")],
    ),
    (
        "SIGNALS",
        &[
            ("SIGTERM, SIGINT", "Stop: every mark is removed and every pending open allowed, within a second."),
            ("SIGHUP", "Reload the signature database (systemctl reload moat-watch); opens are scanned with the old one until the new one is in use."),
        ],
    ),
    (
        "SYSTEMD",
        &[
            ("Type=notify", "READY=1 (with STATUS=, the startup line) once every mark is placed."),
            ("WatchdogSec=", "With WATCHDOG_USEC set, WATCHDOG=1 every half interval, only while the fanotify reader turns and a scanning thread takes work: a daemon that stopped answering opens is killed and restarted (Restart=on-failure)."),
            ("", "While moat watch is not running the kernel allows every open."),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            ("0", "After a clean stop."),
            ("2", "When it cannot start, or when a daemon thread died."),
        ],
    ),
];

/// moat-serve(1) and `moat serve --help`.
pub const SERVE: &[Section] = &[
    (
        "CONFIGURATION",
        &[("", "Reads LocalSocket, TCPSocket, TCPAddr, MaxThreads, DatabaseDirectory, Log* and the scan limits of clamd.conf. Takes its sockets from systemd when started by moat-serve.socket (socket activation).")],
    ),
    (
        "SIGNALS",
        &[
            ("SIGTERM, SIGINT", "Stop."),
            ("SIGUSR2", "Reload the signature database, as clamd (and RELOAD)."),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            ("0", "After a clean stop."),
            ("2", "When it cannot start."),
        ],
    ),
];

/// The notes as `--help` shows them after the options.
pub fn help(sections: &[Section]) -> String {
    let mut out = String::new();
    for (title, items) in sections {
        out.push_str(&format!("{title}:\n"));
        for (term, text) in *items {
            if !term.is_empty() {
                out.push_str(&format!("  {term}\n"));
            }
            let indent = if term.is_empty() { "  " } else { "      " };
            for line in wrap(text, 88 - indent.len()) {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// `text` in lines of at most `width` characters, broken between words (a word longer
/// than `width` stays whole). By hand: a greedy fill is a few lines.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// The notes of a subcommand (none for others).
fn notes(name: &str) -> &'static [Section] {
    match name {
        "watch" => WATCH,
        "serve" => SERVE,
        _ => &[],
    }
}

/// Writes moat.1 and one page per visible subcommand (moat-scan.1...) into `dir`.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub.clone(), notes(sub.get_name()), dir)?;
    }
    write_page(cmd, MOAT, dir)
}

/// clap_mangen's sections, then the notes as sections of their own (clap_mangen would put
/// them in one "EXTRA" paragraph).
fn write_page(cmd: clap::Command, sections: &[Section], dir: &Path) -> std::io::Result<()> {
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let has_version = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if has_subcommands {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::new();
    for (title, items) in sections {
        roff.control("SH", [*title]);
        for (term, text) in *items {
            if term.is_empty() {
                roff.control("PP", []).text([roman(*text)]);
            } else {
                roff.control("TP", [])
                    .text([bold(*term)])
                    .text([roman(*text)]);
            }
        }
    }
    roff.to_writer(&mut out)?;
    if has_version {
        man.render_version_section(&mut out)?;
    }
    std::fs::write(dir.join(man.get_filename()), out)
}
