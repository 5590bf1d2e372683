//! Coverage set-up with a warm and a cold cache, on a real disk filesystem.
//!
//! A tmpfs is never cold, so these measurements use an ext4 image kept between runs under
//! the data dir (`watch-ext4/trees.ext4`: sparse, `mkfs.ext4 -b 1024 -N 1300000`),
//! loop-mounted below the run's temp dir and unmounted on every exit path ([`Ext4`]). It
//! holds one tree per size (`tree-N`, generated once; `tree-N.done` marks a finished tree
//! and lists its probes, so a later run reuses it without walking it).
//!
//! For each size and product (moat in each scope, clamd + clamonacc): **cold** = `sync;
//! echo 3 > /proc/sys/vm/drop_caches` right before starting the product (clamd is started
//! after the drop, clamonacc once clamd answers); **warm** = after one full walk of the
//! tree. Then time to READY (moat), to full coverage (every probe denies its infected file
//! to uid 65534), resident memory once covered (clamonacc and clamd separately) and CPU
//! time spent getting there.
//!
//! [`Ext4`]: super::mount::Ext4

use super::daemon;
use super::probe::Prober;
use super::{moat, mount, tree, Measured, Setup, Started};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure.
pub struct Plan {
    /// Tree sizes.
    pub sizes: Vec<u64>,
    /// Sizes with a cold run of every product; the others: moat filesystem scope only.
    pub cold_all_products: Vec<u64>,
}

/// One product's coverage set-up.
#[derive(Clone, Debug, Default)]
pub struct Cov {
    /// moat: spawn to READY (ms).
    pub ready_ms: Option<f64>,
    /// moat: the set-up time it logs (ms).
    pub setup_ms: Option<f64>,
    /// Spawn (of the process holding the fanotify group) to the last probe denied (ms).
    pub full_ms: Option<f64>,
    /// Probes denied, of all.
    pub covered: (usize, usize),
    /// `(process, VmRSS bytes)` once covered, in start order (clamonacc first, clamd).
    pub rss: Vec<(&'static str, u64)>,
    /// `(process, CPU ms)` from spawn to coverage.
    pub cpu_ms: Vec<(&'static str, f64)>,
}

/// One run.
pub struct Run {
    /// `moat filesystem`, `moat directory`, `clamonacc`.
    pub product: String,
    /// Cold cache (else warm).
    pub cold: bool,
    /// The figures, or why there are none.
    pub result: Result<Cov, String>,
}

/// One size.
pub struct SizeCov {
    /// Directories below the tree root.
    pub dirs: u64,
    /// The tree.
    pub dir: PathBuf,
    /// Seconds spent generating it (None: reused from the image).
    pub generated_secs: Option<f64>,
    /// The warm-up walk before the warm runs: seconds.
    pub walk_secs: f64,
    /// Runs, cold ones first.
    pub runs: Vec<Run>,
}

/// Everything measured on the image.
pub struct Coverage {
    /// The image file.
    pub image: PathBuf,
    /// mkfs time when the image was created by this run.
    pub mkfs_secs: Option<f64>,
    /// Where it was mounted.
    pub mount: PathBuf,
    /// Per size.
    pub sizes: Vec<SizeCov>,
    /// Sizes whose cold runs were moat filesystem scope only.
    pub cold_fs_only: Vec<u64>,
}

/// Runs every size of `plan.coverage` on the ext4 image.
pub fn run(
    plan: &super::Plan,
    data: &Path,
    runs: &Path,
    tmp: &Path,
    moat_bin: Result<&Path, &String>,
    clam_bins: Result<&super::clamav::Binaries, &String>,
    sysctls: &mut mount::Sysctls,
) -> Result<Coverage, String> {
    let image = data.join("watch-ext4").join("trees.ext4");
    let disk = mount::Ext4::mount(&image, &tmp.join("ext4"))?;
    if let Some(s) = disk.mkfs_secs {
        eprintln!("moat-bench: ext4 image created in {s:.1}s");
    }
    let mut out = Coverage {
        image: image.clone(),
        mkfs_secs: disk.mkfs_secs,
        mount: disk.path.clone(),
        sizes: Vec::new(),
        cold_fs_only: Vec::new(),
    };
    for &dirs in &plan.coverage.sizes {
        daemon::check_interrupted()?;
        let (t, generated) =
            tree::ensure_cached(&disk.path, dirs).map_err(|e| format!("ext4 tree: {e}"))?;
        match generated {
            Some(s) => eprintln!(
                "moat-bench: ext4 tree of {dirs} directories generated in {s:.1}s ({:.0} dirs/s, \
                 synced; cached in {} for later runs)",
                dirs as f64 / s,
                image.display()
            ),
            None => eprintln!(
                "moat-bench: ext4 tree of {dirs} directories reused from {} (marker {}.done)",
                image.display(),
                t.dir.display()
            ),
        }
        mount::check_private(&t.dir, disk.dev)?;
        sysctls.ensure(dirs + 20_000, plan.raise_limits);
        let size_runs = runs.join(format!("coverage-{dirs}"));
        fs::create_dir_all(&size_runs).map_err(|e| format!("{}: {e}", size_runs.display()))?;
        let setup = Setup {
            probe_files: t.probe_files(),
            clean: Vec::new(),
            big: Vec::new(),
            tp: Vec::new(),
            mnt: disk.path.clone(),
            timeout: plan.timeout,
            race_rounds: 0,
            tree: t,
            runs: size_runs,
            tmp: tmp.to_path_buf(),
        };
        super::preflight(&setup)?;
        let confs = super::write_configs(&setup, plan)?;
        let all_cold = plan.coverage.cold_all_products.contains(&dirs);
        if !all_cold {
            out.cold_fs_only.push(dirs);
        }
        let mut size = SizeCov {
            dirs,
            dir: setup.tree.dir.clone(),
            generated_secs: generated,
            walk_secs: 0.0,
            runs: Vec::new(),
        };
        for cold in [true, false] {
            if !cold {
                eprintln!(
                    "moat-bench: walking the ext4 tree of {dirs} directories once (warm cache)..."
                );
                let t = Instant::now();
                tree::walk_count(&setup.tree.dir).map_err(|e| format!("walk: {e}"))?;
                size.walk_secs = t.elapsed().as_secs_f64();
                eprintln!(
                    "moat-bench: walked in {:.1}s ({:.0} dirs/s)",
                    size.walk_secs,
                    dirs as f64 / size.walk_secs.max(1e-9)
                );
            }
            for (&scope, conf) in plan.scopes.iter().zip(&confs.moat) {
                daemon::check_interrupted()?;
                if cold && !all_cold && scope != "filesystem" {
                    continue;
                }
                let which = if cold { "cold" } else { "warm" };
                let log = setup.runs.join(format!("moat-watch-{scope}-{which}.log"));
                let result = moat_bin.map_err(String::clone).and_then(|bin| {
                    measure(&setup, &format!("moat-{scope} ({which})"), cold, || {
                        super::start_moat(bin, conf, &log, &setup)
                    })
                });
                size.runs.push(Run {
                    product: format!("moat {scope}"),
                    cold,
                    result,
                });
            }
            if cold && !all_cold {
                continue;
            }
            daemon::check_interrupted()?;
            let which = if cold { "cold" } else { "warm" };
            let result = clam_bins.map_err(String::clone).and_then(|bins| {
                measure(&setup, &format!("clamonacc ({which})"), cold, || {
                    super::start_clamav(bins, &confs.clamd, &confs.socket, &setup)
                })
            });
            size.runs.push(Run {
                product: "clamonacc".to_string(),
                cold,
                result,
            });
        }
        out.sizes.push(size);
    }
    drop(disk);
    Ok(out)
}

/// One product: (drop caches,) start, wait for every probe, read memory and CPU, stop.
fn measure(
    setup: &Setup,
    tag: &str,
    cold: bool,
    start: impl FnOnce() -> Result<Started, String>,
) -> Result<Cov, String> {
    if cold {
        mount::drop_caches()?;
    }
    let mut prober = Prober::start(&setup.probe_files)?;
    let mut s = start()?;
    eprintln!("moat-bench: {tag}: started, waiting for coverage...");
    let mut m = Measured::default();
    super::wait_for_coverage(setup, &mut prober, &mut s, &mut m)?;
    drop(prober);
    super::report_progress(s.daemons[0].name, &m);
    let mut c = Cov {
        ready_ms: m.ready.as_ref().map(|r| r.0),
        covered: (m.coverage.iter().flatten().count(), m.coverage.len()),
        full_ms: m
            .coverage
            .iter()
            .copied()
            .collect::<Option<Vec<f64>>>()
            .and_then(|v| v.into_iter().reduce(f64::max)),
        ..Cov::default()
    };
    if s.notify.is_some() {
        c.setup_ms = moat::watching_line(&s.daemons[0].log).map(|w| w.ms);
    }
    for d in &s.daemons {
        if let Some((rss, _)) = daemon::memory_of(d.pid()) {
            c.rss.push((d.name, rss));
        }
        if let Some(ms) = super::load::cpu_ms(d.pid()) {
            c.cpu_ms.push((d.name, ms));
        }
    }
    for d in &mut s.daemons {
        d.check_alive()?;
        d.stop(Duration::from_secs(5));
    }
    if let Some(e) = m.probe_errors.first() {
        return Err(format!("probe error: {e}"));
    }
    Ok(c)
}

/// RSS per 100,000 covered directories, MB.
pub fn mb_per_100k(rss: u64, dirs: u64) -> f64 {
    rss as f64 / 1e6 * 100_000.0 / dirs.max(1) as f64
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| {
        if v >= 10_000.0 {
            format!("{:.1} s", v / 1e3)
        } else {
            format!("{v:.1} ms")
        }
    })
}

/// Prints one table per size.
pub fn print(c: &Coverage, tracking: Option<&str>) {
    println!();
    println!(
        "== coverage set-up, warm and cold cache: ext4 image {} (loop-mounted on {}, -b 1024; \
         cached between runs{}) ==",
        c.image.display(),
        c.mount.display(),
        c.mkfs_secs.map_or(String::new(), |s| format!(
            "; created by this run, mkfs {s:.2}s"
        ))
    );
    println!(
        "cold = sync + drop_caches right before starting the product; warm = after one full \
         walk of the tree; moat directory scope: {}",
        tracking.map_or("default tracking".to_string(), |t| format!(
            "OnAccessTracking {t}"
        ))
    );
    for s in &c.sizes {
        println!();
        println!(
            "-- {} directories ({}; {}; walk before the warm runs, right after the cold ones: \
             {:.1}s, {:.0} dirs/s) --",
            s.dirs,
            s.dir.display(),
            s.generated_secs
                .map_or("tree reused from the image".to_string(), |g| format!(
                    "tree generated on ext4 in {g:.1}s, {:.0} dirs/s",
                    s.dirs as f64 / g
                )),
            s.walk_secs,
            s.dirs as f64 / s.walk_secs.max(1e-9)
        );
        println!(
            "{:<17} | {:>5} | {:>10} | {:>10} | {:>12} | {:>9} | {:>12} | {:>13} | target",
            "product",
            "cache",
            "READY",
            "its log",
            "FULL COVER.",
            "RSS MB",
            "MB/100k dirs",
            "CPU to cover"
        );
        println!("{}", "-".repeat(120));
        for r in &s.runs {
            let cache = if r.cold { "cold" } else { "warm" };
            match &r.result {
                Err(e) => println!("{:<17} | {cache:>5} | n/a: {e}", r.product),
                Ok(v) => {
                    let rss: Vec<String> = v
                        .rss
                        .iter()
                        .map(|(n, b)| format!("{}{:.1}", short(n), *b as f64 / 1e6))
                        .collect();
                    let per: Vec<String> = v
                        .rss
                        .iter()
                        .map(|(n, b)| format!("{}{:.1}", short(n), mb_per_100k(*b, s.dirs)))
                        .collect();
                    let cpu: f64 = v.cpu_ms.iter().map(|x| x.1).sum();
                    let target = if r.product == "moat filesystem" {
                        match v.ready_ms {
                            Some(x) if x < 50.0 => "READY < 50 ms: met",
                            Some(_) => "READY < 50 ms: MISSED",
                            None => "READY < 50 ms: ?",
                        }
                    } else {
                        ""
                    };
                    let full = if v.full_ms.is_some() {
                        ms(v.full_ms)
                    } else {
                        format!("{}/{} only", v.covered.0, v.covered.1)
                    };
                    println!(
                        "{:<17} | {cache:>5} | {:>10} | {:>10} | {:>12} | {:>9} | {:>12} | {:>10.0} ms | {target}",
                        r.product,
                        ms(v.ready_ms),
                        ms(v.setup_ms),
                        full,
                        rss.join("+"),
                        per.join("+"),
                        cpu
                    );
                }
            }
        }
    }
    if !c.cold_fs_only.is_empty() {
        println!(
            "cold cache at {:?} directories: moat filesystem scope only (a cold walk of a big \
             tree takes ~60-75 s per walking product here; --cold-dirs to choose)",
            c.cold_fs_only
        );
    }
    println!(
        "clamonacc rows: RSS and CPU as clamonacc+clamd (o = clamonacc, d = clamd); CPU to cover \
         counts from each process's start"
    );
}

fn short(name: &str) -> &'static str {
    match name {
        "clamonacc" => "o:",
        "clamd" => "d:",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_100k_dirs() {
        assert_eq!(mb_per_100k(82_000_000, 100_000), 82.0);
        assert_eq!(mb_per_100k(1_000_000_000, 1_000_000), 100.0);
        assert_eq!(mb_per_100k(9_000_000, 10_000), 90.0);
    }
}
