//! clamd's client protocol for moat: `moat serve`, a clamd-compatible server.
//!
//! - [`protocol`]: framing (`z`/`n`/unprefixed), the command table, reply texts and the
//!   INSTREAM chunk decoder, as pure functions (unit- and property-tested, fuzzable);
//! - [`server`]: listening sockets (LocalSocket with its mode, group and stale-socket fix,
//!   TCPSocket/TCPAddr, or sockets inherited from systemd), the accept loop, RELOAD (a new
//!   database built on its own thread and swapped in; scans keep the one they started with)
//!   and SHUTDOWN;
//! - `conn`: one thread per connection: reading and framing, cheap commands answered at once,
//!   INSTREAM spooled to a temp file, FILDES descriptors received, IDSESSION ids; scans go to
//!   the [`pool`] (MaxThreads workers, MaxQueue jobs), so PING and small streams keep
//!   answering while every worker is busy and while other clients upload slowly;
//! - [`pathscan`]: SCAN, CONTSCAN, MULTISCAN and ALLMATCHSCAN walks and their reply lines;
//! - `stats`: STATS;
//! - [`cache`]: the clean-verdict cache (digest of the scanned bytes, per loaded database).
//!
//! Files are scanned through moat-guard's [`moat_guard::Scanner`] trait: the embedded engine
//! in `moat serve`, any other backend in tests.

#![warn(missing_docs)]

pub mod cache;
pub mod client;
mod conn;
pub mod pathscan;
pub mod pool;
pub mod prio;
pub mod protocol;
pub mod server;
mod sock;
mod stats;

pub use server::{
    bind_listeners, inherited_listeners, Database, Event, Listener, Loader, Server, Settings,
    VERSION_PREFIX,
};
