//! Every signature that matches a file, not only the first: clamscan's `--allmatch`,
//! clamd's ALLMATCHSCAN (AllowAllMatchScan).
//!
//! The passes and their order are [`Engine::scan_bytes_with`]'s (see the crate's
//! description); within a pass, body signatures come in their reporting rank
//! ([`crate::body::BodyScan::finish_all`]), hashes MD5, SHA-1 then SHA-256, logical
//! signatures in load order. Measured on clamscan 1.4.6 `--allmatch`: three body
//! signatures, then a whole-file MD5, then a logical signature; a signature matching both
//! the raw bytes and the normalized copy is reported once per pass. Kept apart from the
//! first-match path, which stops computing at the first detection.

use crate::facts::FileFacts;
use crate::hashes::FileDigests;
use crate::logical::LogicalFacts;
use crate::{mail, raw_logical_facts, textnorm, Engine, Limits, MAX_NESTING, MIN_SCANNED_SIZE};
use moat_formats::FileType;
use moat_sigs::line::TARGET_TEXT;

impl Engine {
    /// Every detection in the complete contents `data` of a file, in ClamAV's
    /// `--allmatch` order; empty when nothing matches or the allow list clears the file.
    /// A detection name may appear more than once (once per pass it matches in).
    pub fn scan_bytes_all(&self, data: &[u8], limits: &Limits) -> Vec<&str> {
        let mut found = Vec::new();
        self.all_nested(data, limits, 0, &mut found);
        if !found.is_empty() && self.allow.lookup(&mut FileDigests::of(data)).is_some() {
            found.clear();
        }
        found
    }

    fn all_nested<'s>(&'s self, data: &[u8], limits: &Limits, depth: u32, out: &mut Vec<&'s str>) {
        if data.len() < MIN_SCANNED_SIZE {
            return;
        }
        let source: &[u8] = data;
        let facts = FileFacts::with_magic(data, &source, &self.magic);
        if facts.file_type().is_ignored() {
            return;
        }
        if let Some(body) = mail::scanned_body(facts.file_type(), data) {
            if depth < MAX_NESTING {
                self.all_nested(body, limits, depth + 1, out);
            }
        }
        let html = facts.file_type() == FileType::Html;
        if !html {
            out.extend(
                self.typed
                    .scan_raw_all(&facts, data)
                    .iter()
                    .map(|s| &*s.name),
            );
            let raw = self.body.scan_all(data, None);
            out.extend(raw.iter().map(|m| &*self.body.sig(m.sig).name));
        }
        out.extend(self.hashes.lookup_all(&mut FileDigests::of(data)));
        if !html {
            let lf = raw_logical_facts(&facts, data.len() as u64, None);
            out.extend(self.logical.scan_all(data, &lf, facts.exe()));
        }
        out.extend(self.typed.section_hash(&facts));
        if html {
            self.all_html(data, out);
        } else if self.wants_normalized(data, facts.file_type(), data.len() as u64, limits) {
            self.all_normalized(&textnorm::normalize(data), data.len() as u64, out);
        }
    }

    /// [`Engine::scan_html`]'s passes, every match of each.
    fn all_html<'s>(&'s self, data: &[u8], out: &mut Vec<&'s str>) {
        let copy = crate::htmlnorm::normalize(data);
        let html = self.typed.html();
        for d in [&copy.html[..], &copy.notags[..], &copy.scripts[..]] {
            for m in [html, &self.text_any] {
                out.extend(m.scan_all(d, None).iter().map(|f| &*m.sig(f.sig).name));
            }
        }
        let scripts = self.text.scan_all(&copy.scripts, None);
        out.extend(scripts.iter().map(|f| &*self.text.sig(f.sig).name));
    }

    /// [`Engine::scan_normalized`]'s passes, every match of each.
    fn all_normalized<'s>(&'s self, copy: &[u8], file_size: u64, out: &mut Vec<&'s str>) {
        for m in [&self.text, &self.text_any] {
            out.extend(m.scan_all(copy, None).iter().map(|f| &*m.sig(f.sig).name));
        }
        let facts = LogicalFacts {
            target: TARGET_TEXT,
            ..LogicalFacts::plain(file_size)
        };
        out.extend(self.logical_text.scan_all(copy, &facts, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine over database files of these names and contents, loaded from a directory
    /// as clamscan loads them.
    fn engine(files: &[(&str, &str)]) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Engine::new(moat_sigs::Database::load(&[dir.path()]).unwrap())
    }

    fn hex(s: impl AsRef<[u8]>) -> String {
        s.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn every_body_hash_and_logical_match_in_clamscans_order() {
        // clamscan 1.4.6 --allmatch on this file and database printed Sig.A, Sig.B,
        // Sig.C, Sig.Hash, Sig.Ldb (first match: Sig.A).
        let data = b"xx MOATTESTMARKERAAAA yy\nzz MOATTESTOTHERBBBB\nqq MOATTESTTHIRDCCCC\n";
        let md5 = hex(<md5::Md5 as md5::Digest>::digest(data));
        let e = engine(&[
            (
                "a.ndb",
                &format!(
                    "Sig.A:0:*:{}\nSig.B:0:*:{}\n",
                    hex("MOATTESTMARKERAAAA"),
                    hex("MOATTESTOTHERBBBB")
                ),
            ),
            (
                "b.ndb",
                &format!("Sig.C:0:*:{}\n", hex("MOATTESTTHIRDCCCC")),
            ),
            ("c.hdb", &format!("{md5}:{}:Sig.Hash\n", data.len())),
            (
                "d.ldb",
                &format!(
                    "Sig.Ldb;Engine:51-255,Target:0;0&1;{};{}\n",
                    hex("MOATTESTOTHERBBBB"),
                    hex("MOATTESTMARKERAAAA")
                ),
            ),
        ]);
        let names: Vec<&str> = e.scan_bytes_all(data, &Limits::default());
        assert_eq!(
            names,
            [
                "Sig.A.UNOFFICIAL",
                "Sig.B.UNOFFICIAL",
                "Sig.C.UNOFFICIAL",
                "Sig.Hash.UNOFFICIAL",
                "Sig.Ldb.UNOFFICIAL"
            ]
        );
        assert_eq!(
            e.scan_bytes(data),
            crate::Verdict::Infected("Sig.A.UNOFFICIAL")
        );
        assert!(e
            .scan_bytes_all(b"nothing here\n", &Limits::default())
            .is_empty());
    }

    #[test]
    fn signatures_in_file_order_not_load_order() {
        // clamscan --allmatch printed Sig.B before Sig.A for this file.
        let data = b"zz MOATTESTOTHERBBBB\nxx MOATTESTMARKERAAAA yy\n";
        let e = engine(&[(
            "a.ndb",
            &format!(
                "Sig.A:0:*:{}\nSig.B:0:*:{}\n",
                hex("MOATTESTMARKERAAAA"),
                hex("MOATTESTOTHERBBBB")
            ),
        )]);
        assert_eq!(
            e.scan_bytes_all(data, &Limits::default()),
            ["Sig.B.UNOFFICIAL", "Sig.A.UNOFFICIAL"]
        );
    }

    #[test]
    fn a_raw_match_is_reported_again_by_the_normalized_pass() {
        // clamscan --allmatch printed Low2, Low, Low2, Low for this file (raw bytes, then
        // the normalized copy).
        let data = b"hello lowmarker one\n<script>x</script>\n";
        let e = engine(&[(
            "low.ndb",
            &format!(
                "Sig.Low:0:*:{}\nSig.Low2:0:*:{}\n",
                hex("lowmarker one"),
                hex("hello low")
            ),
        )]);
        assert_eq!(
            e.scan_bytes_all(data, &Limits::default()),
            [
                "Sig.Low2.UNOFFICIAL",
                "Sig.Low.UNOFFICIAL",
                "Sig.Low2.UNOFFICIAL",
                "Sig.Low.UNOFFICIAL"
            ]
        );
    }
}
