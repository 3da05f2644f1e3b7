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
//!
//! The rsvm cases are also broken down, per fault: BAR0 accesses (the
//! model's debug counters, read through `resource0`, cold minus warm run)
//! times the cost of one access measured here, interrupts (from
//! `/proc/interrupts`) times the cost of one measured with the model's
//! software interrupt, the model's own engine time (its debug counter), and
//! the rest: the driver's and the kernel's software.

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

/// Model-private debug registers (`Documentation/gpu/rsvm/hardware.rst`).
const DEBUG_BAR0_READS_LO: usize = 0xfe_0300;
const DEBUG_BAR0_WRITES_LO: usize = 0xfe_0308;
const DEBUG_ENGINE_NS_LO: usize = 0xfe_0318;
const NV_PMC_BOOT_0: usize = 0;
const NV_PBUS_SW_SCRATCH_63: usize = 0x1400 + 4 * 63;
const SWINTR_TRIGGER: usize = 0xfe_0100;
const SWINTR_STATUS: usize = 0xfe_0104;
const BAR0_MAP: usize = 16 << 20;

/// BAR0 of the rsvm device, mapped from sysfs (`resource0`).
struct Bar0 {
    ptr: *mut u32,
}

impl Bar0 {
    fn open() -> io::Result<Self> {
        for e in std::fs::read_dir("/sys/bus/pci/devices")? {
            let dir = e?.path();
            let vendor = std::fs::read_to_string(dir.join("vendor")).unwrap_or_default();
            if vendor.trim() != "0x5253" {
                continue;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join("resource0"))?;
            // SAFETY: a shared mapping of the BAR, unmapped in drop.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    BAR0_MAP,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            return Ok(Self { ptr: ptr.cast() });
        }
        Err(io::Error::from_raw_os_error(libc::ENODEV))
    }

    fn read(&self, off: usize) -> u32 {
        assert!(off < BAR0_MAP && off.is_multiple_of(4));
        // SAFETY: an aligned register inside the mapping; MMIO needs a
        // volatile access.
        unsafe { self.ptr.add(off / 4).read_volatile() }
    }

    fn write(&self, off: usize, v: u32) {
        assert!(off < BAR0_MAP && off.is_multiple_of(4));
        // SAFETY: as in `read`.
        unsafe { self.ptr.add(off / 4).write_volatile(v) }
    }

    fn read64(&self, off: usize) -> u64 {
        u64::from(self.read(off)) | (u64::from(self.read(off + 4)) << 32)
    }

    /// (BAR0 accesses, engine ns) so far.
    fn counters(&self) -> (u64, u64) {
        (
            self.read64(DEBUG_BAR0_READS_LO) + self.read64(DEBUG_BAR0_WRITES_LO),
            self.read64(DEBUG_ENGINE_NS_LO),
        )
    }
}

impl Drop for Bar0 {
    fn drop(&mut self) {
        // SAFETY: mapped in `open` with this length.
        unsafe { libc::munmap(self.ptr.cast(), BAR0_MAP) };
    }
}

/// Interrupts the rsvm vector took so far (`/proc/interrupts`).
fn interrupts() -> u64 {
    let text = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("rsvm"))
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map_while(|w| w.parse::<u64>().ok())
        })
        .sum()
}

/// What one run's cold job cost beyond its warm one, per fault.
#[derive(Clone, Copy, Default)]
struct Costs {
    accesses: f64,
    interrupts: f64,
    engine_us: f64,
}

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

/// One rsvm measurement: (cold, warm) job times in µs, and the cold job's
/// extra BAR0 accesses, interrupts and engine time per fault.
fn rsvm_run(bar: &Bar0, write: bool, threads: u32) -> io::Result<(f64, f64, Costs)> {
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
    let mut seen = [(0u64, 0u64, 0u64); 2];
    for (t, c) in times.iter_mut().zip(seen.iter_mut()) {
        let (a0, i0) = (bar.counters(), interrupts());
        let t0 = Instant::now();
        let seq = ch.submit(&p)?;
        ch.wait(seq, TIMEOUT).map_err(io::Error::other)?;
        *t = t0.elapsed().as_secs_f64() * 1e6;
        let a1 = bar.counters();
        *c = (a1.0 - a0.0, a1.1 - a0.1, interrupts() - i0);
    }
    let n = WINDOWS as f64;
    let (cold, warm) = (seen[0], seen[1]);
    let d = |x: u64, y: u64| (x as f64 - y as f64) / n;
    let costs = Costs {
        accesses: d(cold.0, warm.0),
        interrupts: d(cold.2, warm.2),
        engine_us: d(cold.1, warm.1) / 1e3,
    };
    Ok((times[0], times[1], costs))
}

/// Cost of one BAR0 read and one posted write from here, in µs (medians
/// of 5 loops of 500 accesses).
fn access_cost(bar: &Bar0) -> (f64, f64) {
    let time = |f: &dyn Fn()| {
        let t0 = Instant::now();
        for _ in 0..500 {
            f();
        }
        // A read flushes the posted writes.
        bar.read(NV_PMC_BOOT_0);
        t0.elapsed().as_secs_f64() * 1e6 / 500.0
    };
    let reads = median(
        (0..5)
            .map(|_| {
                time(&|| {
                    let _ = bar.read(NV_PMC_BOOT_0);
                })
            })
            .collect(),
    );
    let writes = median(
        (0..5)
            .map(|_| time(&|| bar.write(NV_PBUS_SW_SCRATCH_63, 1)))
            .collect(),
    );
    (reads, writes)
}

/// Cost of one interrupt, in µs: the model's software interrupt, raised
/// here until the driver's handler cleared it (MSI delivery, the handler's
/// register accesses), median of 21. This thread sleeps between its status
/// reads (a spinning vCPU delays delivery, and nothing spins in the fault
/// path); each read after the first costs about `read_us`, subtracted.
fn interrupt_cost(bar: &Bar0, read_us: f64) -> f64 {
    let v = (0..21)
        .map(|_| {
            let t0 = Instant::now();
            bar.write(SWINTR_TRIGGER, 1);
            let mut polls = 0.0;
            while bar.read(SWINTR_STATUS) & 1 != 0 {
                polls += 1.0;
                std::thread::sleep(Duration::from_micros(20));
            }
            (t0.elapsed().as_secs_f64() * 1e6 - polls * read_us).max(0.0)
        })
        .collect();
    median(v)
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

/// One run of a case: (cold, warm) µs, and for rsvm the costs.
type Sample = (f64, f64, Option<Costs>);
type RunFn = Box<dyn Fn(&Bar0) -> io::Result<Sample>>;

struct Case {
    what: &'static str,
    run: RunFn,
}

fn rsvm_case(write: bool, threads: u32) -> RunFn {
    Box::new(move |bar| rsvm_run(bar, write, threads).map(|(a, b, c)| (a, b, Some(c))))
}

fn hmm_case(write: bool, pages: usize) -> RunFn {
    Box::new(move |_| hmm_run(write, pages).map(|(a, b)| (a, b, None)))
}

fn main() {
    let bar = match Bar0::open() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rsvm-faultbench: cannot map BAR0: {e}");
            std::process::exit(1);
        }
    };
    let cases = [
        Case {
            what: "rsvm: GPU read fault, 1 thread (64 KiB window)",
            run: rsvm_case(false, 1),
        },
        Case {
            what: "rsvm: GPU write fault, 1 thread (64 KiB window)",
            run: rsvm_case(true, 1),
        },
        Case {
            what: "rsvm: GPU read faults, 64 threads (batched)",
            run: rsvm_case(false, 64),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_READ, 1 page",
            run: hmm_case(false, 1),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_READ, 16 pages (64 KiB)",
            run: hmm_case(false, 16),
        },
        Case {
            what: "test_hmm: HMM_DMIRROR_WRITE, 1 page",
            run: hmm_case(true, 1),
        },
    ];
    println!(
        "rsvm-faultbench: {WINDOWS} faults per run, median of {RUNS} runs (the cases \
         interleaved), guest wall time"
    );
    println!();
    println!("| case | per fault (us) | cold run (us) | warm run (us) |");
    println!("|---|---:|---:|---:|");
    // Round-robin over the cases, so that every case sees the same host
    // load and a ratio can be taken within each round.
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let mut failed = false;
    'rounds: for _ in 0..RUNS {
        for (c, v) in cases.iter().zip(samples.iter_mut()) {
            match (c.run)(&bar) {
                Ok(x) => v.push(x),
                Err(e) => {
                    eprintln!("rsvm-faultbench: {}: {e}", c.what);
                    failed = true;
                    break 'rounds;
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    let per_fault = |v: &[Sample]| -> Vec<f64> {
        v.iter()
            .map(|&(a, b, _)| (a - b) / WINDOWS as f64)
            .collect()
    };
    let mut breakdown = Vec::new();
    for (c, v) in cases.iter().zip(samples.iter()) {
        let p = median(per_fault(v));
        println!(
            "| {} | {p:.1} | {:.0} | {:.0} |",
            c.what,
            median(v.iter().map(|x| x.0).collect()),
            median(v.iter().map(|x| x.1).collect())
        );
        println!("BENCH {p:.1} {}", c.what);
        let costs: Vec<Costs> = v.iter().filter_map(|x| x.2).collect();
        if !costs.is_empty() {
            let m = |f: fn(&Costs) -> f64| median(costs.iter().map(f).collect());
            let k = Costs {
                accesses: m(|c| c.accesses),
                interrupts: m(|c| c.interrupts),
                engine_us: m(|c| c.engine_us),
            };
            breakdown.push((c.what, p, k));
        }
    }
    // Ratios within each round, against test_hmm's 16-page READ (the same
    // 64 KiB window per fault); the median over the rounds.
    let hmm16 = per_fault(&samples[4]);
    println!();
    println!(
        "| ratio, within each round (median) | x test_hmm 16-page READ | x test_hmm 1-page READ |"
    );
    println!("|---|---:|---:|");
    let hmm1 = per_fault(&samples[3]);
    for (c, v) in cases.iter().zip(samples.iter()).take(3) {
        let pf = per_fault(v);
        let r16 = median(pf.iter().zip(&hmm16).map(|(a, b)| a / b).collect());
        let r1 = median(pf.iter().zip(&hmm1).map(|(a, b)| a / b).collect());
        println!("| {} | {r16:.2} | {r1:.2} |", c.what);
        println!("RATIO {r16:.3} {r1:.3} {}", c.what);
    }
    // Measured after the cases, in the same guest run.
    let (read_us, write_us) = access_cost(&bar);
    let access_us = (read_us + write_us) / 2.0;
    let irq_us = interrupt_cost(&bar, read_us);
    println!();
    println!(
        "One BAR0 access: {read_us:.1} us (read), {write_us:.1} us (posted write); \
         one interrupt (MSI delivery and handler, a sleeping poller): {irq_us:.1} us."
    );
    println!();
    println!(
        "| per fault | total (us) | BAR0 accesses | x cost (us) | interrupts | \
         model engine (us) | the rest (us): software, interrupt delivery, scheduling |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (what, p, k) in breakdown {
        let bar_us = k.accesses * access_us;
        let rest = p - bar_us - k.engine_us;
        println!(
            "| {what} | {p:.1} | {:.2} | {bar_us:.1} | {:.3} | {:.1} | {rest:.1} |",
            k.accesses, k.interrupts, k.engine_us
        );
        println!(
            "BREAKDOWN {:.3} {:.4} {:.2} {rest:.1} {what}",
            k.accesses, k.interrupts, k.engine_us
        );
    }
}
