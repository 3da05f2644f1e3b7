// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! The IGT test protocol for Rust test programs, as `igt-tests/lib/igt.h`
//! implements it for C: `--list-subtests`, `--run-subtest NAME`, and
//!
//! ```text
//! Starting subtest: NAME
//! Subtest NAME: SUCCESS (0.012s)      (or SKIP / FAIL)
//! ```
//!
//! A subtest fails by panicking (`assert!`), skips by returning
//! `Err(Skip)`.

use std::{
    fs::OpenOptions,
    io::Write,
    panic::{self, AssertUnwindSafe},
    process,
    time::Instant,
};

/// A subtest's reason to skip.
#[derive(Debug)]
pub struct Skip(pub String);

/// What a subtest body returns.
pub type Outcome = Result<(), Skip>;

/// The test program's state.
pub struct Igt {
    listing: bool,
    only: Option<String>,
    passed: u32,
    failed: u32,
    skipped: u32,
}

/// Marks the kernel log, so a guest oops is attributed to its subtest.
fn mark_kernel_log(what: &str, name: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        // Best effort: a test does not fail for want of a log line.
        let _ = writeln!(f, "[IGT] {what} subtest {name}");
    }
}

impl Igt {
    /// Reads the command line; exits 79 on a bad one, as IGT does.
    pub fn from_args() -> Self {
        let mut igt = Self {
            listing: false,
            only: None,
            passed: 0,
            failed: 0,
            skipped: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--list-subtests" => igt.listing = true,
                "--run-subtest" if args.len() > 0 => igt.only = args.next(),
                _ => {
                    eprintln!("usage: [--list-subtests] [--run-subtest NAME]");
                    process::exit(79);
                }
            }
        }
        igt
    }

    /// Runs (or lists) one subtest.
    pub fn subtest(&mut self, name: &str, body: impl FnOnce() -> Outcome) {
        if self.listing {
            println!("{name}");
            return;
        }
        if self.only.as_deref().is_some_and(|o| o != name) {
            return;
        }
        println!("Starting subtest: {name}");
        mark_kernel_log("starting", name);
        let t0 = Instant::now();
        let result = match panic::catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(())) => {
                self.passed += 1;
                "SUCCESS"
            }
            Ok(Err(Skip(why))) => {
                println!("Test requirement not met: {why}");
                self.skipped += 1;
                "SKIP"
            }
            Err(_) => {
                self.failed += 1;
                "FAIL"
            }
        };
        println!(
            "Subtest {name}: {result} ({:.3}s)",
            t0.elapsed().as_secs_f64()
        );
        mark_kernel_log("finished", name);
    }

    /// Exits with IGT's code: 0 all passed, 98 any failed, 77 all skipped.
    pub fn finish(self) -> ! {
        let code = if self.failed > 0 {
            98
        } else if self.passed == 0 && self.skipped > 0 {
            77
        } else {
            0
        };
        process::exit(code)
    }
}
