// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! rsvm-faultbench: what one GPU page fault costs, next to the kernel's own
//! HMM test driver (test_hmm) doing the same in the same guest.
//!
//! - rsvm: a GPU job touches one u64 in each of `WINDOWS` 64 KiB windows of
//!   CPU-populated memory. Each touch is the first access to its window, so
//!   each is one replayable fault (interrupt, fault-buffer drain,
//!   `hmm_range_fault` of the window, PTE writes, TLB invalidate, replay).
//!   The same job again, all mapped, is the baseline:
//!   per fault = (cold - warm) / WINDOWS.
//! - test_hmm: `HMM_DMIRROR_READ`/`WRITE` of the same windows on a fresh
//!   mirror (one `hmm_range_fault` each, as `cmd.faults` confirms), minus
//!   the same ioctls once mirrored.
//!
//! All times are guest wall time (`CLOCK_MONOTONIC`); each figure is the
//! median of `RUNS` runs. Output: a table, and a `BENCH per-fault-us case`
//! line per case for scripts/vm.py.

use rsvm::{Device, Kernel, Push, Stacks, PAGE_SIZE};
use std::{
    fs::{File, OpenOptions},
    io,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

const WINDOW: usize = 64 << 10;
const WINDOWS: usize = 256;
const RUNS: usize = 7;
const TIMEOUT: Duration = Duration::from_secs(60);

/// `kernels/src/page_touch.c`'s arguments.
#[repr(C)]
struct TouchArgs {
    base: *mut u8,
    count: u64,
    stride: u64,
    write: u64,
    sum: *mut u64,
}

/// `struct hmm_dmirror_cmd` of the kernel's `lib/test_hmm_uapi.h`.
#[repr(C)]
#[derive(Default)]
struct DmirrorCmd {
    addr: u64,
    ptr: u64,
    npages: u64,
    cpages: u64,
    faults: u64,
}

/// `_IOWR('H', nr, struct hmm_dmirror_cmd)`.
const fn dmirror_ioc(nr: u32) -> u32 {
    (3 << 30) | ((std::mem::size_of::<DmirrorCmd>() as u32) << 16) | (b'H' as u32) << 8 | nr
}
const HMM_DMIRROR_READ: u32 = dmirror_ioc(0);
const HMM_DMIRROR_WRITE: u32 = dmirror_ioc(1);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Anonymous memory, every page written by the CPU (so present and dirty).
struct Populated {
    ptr: *mut u8,
    len: usize,
}

impl Populated {
    fn new(len: usize) -> Self {
        // SAFETY: a fresh private anonymous mapping, unmapped in drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        // 4 KiB pages, as both drivers see most malloc memory: no THP.
        // SAFETY: the range is the mapping above.
        unsafe { libc::madvise(ptr, len, libc::MADV_NOHUGEPAGE) };
        let ptr = ptr.cast::<u8>();
        for off in (0..len).step_by(PAGE_SIZE) {
            // SAFETY: within the mapping.
            unsafe { ptr.add(off).cast::<u64>().write(off as u64 | 1) };
        }
        Self { ptr, len }
    }
}

impl Drop for Populated {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One rsvm measurement: (cold, warm) job times in µs.
fn rsvm_run(write: bool, threads: u32) -> io::Result<(f64, f64)> {
    let mem = Populated::new(WINDOW * WINDOWS);
    let dev = Device::open()?;
    let _mirror = dev.bind_process()?;
    let k = Kernel::builtin("page_touch").expect("page_touch kernel");
    let stacks = Stacks::new(threads, 4096);
    let args = Box::new(TouchArgs {
        base: mem.ptr,
        count: WINDOWS as u64,
        stride: WINDOW as u64,
        write: write.into(),
        sum: std::ptr::null_mut(),
    });
    let mut p = Push::new();
    p.launch(&k, &*args, &stacks);
    let ch = dev.channel()?;
    // Fault in the kernel, arguments and stacks first: only the data's
    // faults are timed.
    let warmup = Box::new(TouchArgs { count: 0, ..*args });
    let mut w = Push::new();
    w.launch(&k, &*warmup, &stacks);
    let seq = ch.submit(&w)?;
    ch.wait(seq, TIMEOUT).map_err(io::Error::other)?;
    let mut times = [0.0; 2];
    for t in &mut times {
        let t0 = Instant::now();
        let seq = ch.submit(&p)?;
        ch.wait(seq, TIMEOUT).map_err(io::Error::other)?;
        *t = t0.elapsed().as_secs_f64() * 1e6;
    }
    Ok((times[0], times[1]))
}

/// One test_hmm measurement over the same windows: (cold, warm) total µs,
/// with `pages` pages per ioctl.
fn hmm_run(write: bool, pages: usize) -> io::Result<(f64, f64)> {
    let mem = Populated::new(WINDOW * WINDOWS);
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/hmm_dmirror0")?;
    let mut bounce = vec![0u8; pages * PAGE_SIZE];
    let req = if write {
        HMM_DMIRROR_WRITE
    } else {
        HMM_DMIRROR_READ
    };
    let mut times = [0.0; 2];
    for (pass, t) in times.iter_mut().enumerate() {
        let mut faults = 0;
        let t0 = Instant::now();
        for i in 0..WINDOWS {
            let mut cmd = DmirrorCmd {
                addr: mem.ptr as u64 + (i * WINDOW) as u64,
                ptr: bounce.as_mut_ptr() as u64,
                npages: pages as u64,
                ..Default::default()
            };
            dmirror_ioctl(&dev, req, &mut cmd)?;
            faults += cmd.faults;
        }
        *t = t0.elapsed().as_secs_f64() * 1e6;
        let want = if pass == 0 { WINDOWS as u64 } else { 0 };
        if faults != want {
            return Err(io::Error::other(format!(
                "test_hmm reported {faults} faults, expected {want}"
            )));
        }
    }
    Ok((times[0], times[1]))
}

fn dmirror_ioctl(dev: &File, req: u32, cmd: &mut DmirrorCmd) -> io::Result<()> {
    // SAFETY: `req` is a test_hmm ioctl taking `struct hmm_dmirror_cmd`,
    // which `DmirrorCmd` lays out; `cmd` is valid for the call.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), req as _, cmd as *mut DmirrorCmd) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

struct Case {
    what: &'static str,
    run: Box<dyn Fn() -> io::Result<(f64, f64)>>,
}

fn main() {
    let cases = [
        Case {
            what: "rsvm: GPU read fault, 1 thread (64 KiB window)",
            run: Box::new(|| rsvm_run(false, 1)),
        },
        Case {
            what: "rsvm: GPU write fault, 1 thread (64 KiB window)",
            run: Box::new(|| rsvm_run(true, 1)),
        },
        Case {
            what: "rsvm: GPU read faults, 64 threads (batched)",
            run: Box::new(|| rsvm_run(false, 64)),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_READ, 1 page",
            run: Box::new(|| hmm_run(false, 1)),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_READ, 16 pages (64 KiB)",
            run: Box::new(|| hmm_run(false, 16)),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_WRITE, 1 page",
            run: Box::new(|| hmm_run(true, 1)),
        },
    ];
    println!("rsvm-faultbench: {WINDOWS} faults per run, median of {RUNS} runs, guest wall time");
    println!();
    println!("| case | per fault (us) | cold run (us) | warm run (us) |");
    println!("|---|---:|---:|---:|");
    let mut failed = false;
    for c in &cases {
        let mut per = Vec::new();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..RUNS {
            match (c.run)() {
                Ok((a, b)) => {
                    per.push((a - b) / WINDOWS as f64);
                    cold.push(a);
                    warm.push(b);
                }
                Err(e) => {
                    eprintln!("rsvm-faultbench: {}: {e}", c.what);
                    failed = true;
                    break;
                }
            }
        }
        if per.len() == RUNS {
            let p = median(per);
            println!(
                "| {} | {p:.1} | {:.0} | {:.0} |",
                c.what,
                median(cold),
                median(warm)
            );
            println!("BENCH {p:.1} {}", c.what);
        }
    }
    std::process::exit(if failed { 1 } else { 0 });
}
