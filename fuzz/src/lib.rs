//! The harness shared by the container fuzz targets: unpack one container format from
//! arbitrary bytes with a visitor that takes every member up to a size cap, so each
//! target drives one decoder and the members' spooling.

use moat_unpack::{unpack, Container, Flow, Member, Options, Visitor};

/// Takes every member, up to 16 MiB each and 256 members: a decoder may not be made
/// to produce more than it is asked for, and memory stays bounded (libFuzzer's RSS
/// cap catches a decoder that allocates from an untrusted length anyway).
struct Take {
    members: usize,
}

impl Visitor for Take {
    fn max_size(&mut self) -> u64 {
        16 << 20
    }

    fn member(&mut self, member: Member) -> Flow {
        assert!(member.contents.len() <= 16 << 20, "member over the size asked for");
        self.members += 1;
        if self.members >= 256 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

/// Unpacks `data` as `kind` (in memory, and small members spooled to a file too).
pub fn unpack_as(kind: Container, data: &[u8]) {
    quiet_caught_panics();
    let _ = Container::sniff(data);
    for threshold in [1 << 20, 64] {
        let options = Options {
            memory_threshold: threshold,
        };
        let _ = unpack(
            kind,
            moat_unpack::Input::Bytes(data),
            &options,
            &mut Take { members: 0 },
        );
    }
}

/// moat-unpack runs the `cab` crate behind `catch_unwind` (it panics on some damaged
/// cabinets, see `cab_members`). libFuzzer's panic hook aborts at the panic, before
/// any `catch_unwind` can see it; this puts the default hook back, once. A panic that
/// nothing catches still reaches libfuzzer-sys's own `catch_unwind` around the target,
/// which aborts: real crashes are still found.
pub fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::panic::take_hook();
    });
}
