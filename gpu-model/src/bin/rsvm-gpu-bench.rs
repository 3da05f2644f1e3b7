//! Benchmarks the model's copy engine: wall-clock throughput against host
//! `memcpy` over the same memory, and the modelled time of each copy against
//! the timing model's configured bandwidth.
//!
//! ```text
//! rsvm-gpu-bench [MIB]     (default 64)
//! ```
//! Prints a Markdown table.

use std::time::Instant;

use rsvm_gpu::ce::{self, launch::*, mthd, CopyEngine};
use rsvm_gpu::dma::DmaMap;
use rsvm_gpu::mem::{GpuMem, PhysAddr};
use rsvm_gpu::mmu::builder::PageTables;
use rsvm_gpu::mmu::encode::Flags;
use rsvm_gpu::mmu::{Tlb, SZ_2M, SZ_4K, SZ_64K};
use rsvm_gpu::timing::{Timing, Traffic};
use rsvm_gpu::vram::Vram;

const RUNS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Row {
    name: &'static str,
    wall_s: f64,
    modelled_ns: u64,
    configured_gbps: f64,
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let len = mib << 20;
    let ram = Vram::new(2 * len + (8 << 20)).expect("guest RAM");
    let dma = DmaMap::default();
    dma.map(0, ram.size(), ram.file(), 0).expect("DMA window");
    let vram = Vram::new(4 * len + (64 << 20)).expect("VRAM");
    let mem = GpuMem {
        vram: &vram,
        dma: &dma,
    };
    let timing = Timing::default();

    // Data to move, and the page tables (in VRAM above 3 * len).
    let data: Vec<u8> = (0..len).map(|i| ((i * 2654435761) >> 13) as u8).collect();
    mem.dma.write(0, &data).unwrap();
    let pt = PageTables::new(3 * len);
    let (sys_va_4k, sys_va_2m, vid_va) = (1u64 << 32, 2u64 << 32, 3u64 << 32);
    pt.map(
        &mem,
        sys_va_4k,
        PhysAddr::sys(0),
        len,
        SZ_4K,
        Flags::default(),
    );
    pt.map(
        &mem,
        sys_va_2m,
        PhysAddr::sys(0),
        len,
        SZ_2M,
        Flags::default(),
    );
    pt.map(
        &mem,
        vid_va,
        PhysAddr::vid(0),
        3 * len,
        SZ_64K,
        Flags::default(),
    );

    // Host memcpy between the same two mappings the copy engine uses.
    let memcpy_s = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                mem.vram
                    .with_slice(len, len as usize, |d| mem.dma.read(0, d).unwrap())
                    .unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    let mut rows = Vec::new();
    let cases: [(&str, u64, u64, u32, f64); 4] = [
        (
            "sysmem -> VRAM, physical",
            0,
            len,
            SRC_PHYSICAL | DST_PHYSICAL,
            timing.link_gbps,
        ),
        (
            "sysmem -> VRAM, virtual 4K -> 64K pages",
            sys_va_4k,
            vid_va + len,
            0,
            timing.link_gbps,
        ),
        (
            "sysmem -> VRAM, virtual 2M -> 64K pages",
            sys_va_2m,
            vid_va + len,
            0,
            timing.link_gbps,
        ),
        (
            "VRAM -> VRAM, virtual 64K pages",
            vid_va + len,
            vid_va + 2 * len,
            0,
            timing.vram_gbps,
        ),
    ];
    for (name, src, dst, flags, configured_gbps) in cases {
        let mut modelled_ns = 0;
        let wall = median(
            (0..RUNS)
                .map(|_| {
                    // A cold TLB each run: translations are part of the work.
                    let mut tlb = Tlb::default();
                    let mut ctx = ce::Context {
                        mem: &mem,
                        tlb: &mut tlb,
                        pdb: Some(pt.pdb),
                        privileged: false,
                        now_ns: 0,
                        read: Traffic::default(),
                        write: Traffic::default(),
                    };
                    let mut engine = CopyEngine::default();
                    let methods = [
                        (mthd::SET_SRC_PHYS_MODE, 1),
                        (mthd::SET_DST_PHYS_MODE, 0),
                        (mthd::OFFSET_IN_UPPER, (src >> 32) as u32),
                        (mthd::OFFSET_IN_LOWER, src as u32),
                        (mthd::OFFSET_OUT_UPPER, (dst >> 32) as u32),
                        (mthd::OFFSET_OUT_LOWER, dst as u32),
                        (mthd::LINE_LENGTH_IN, len as u32),
                    ];
                    for (m, v) in methods {
                        engine.method(&mut ctx, m, v).unwrap();
                    }
                    let launch = TRANSFER_NON_PIPELINED | SRC_PITCH | DST_PITCH | flags;
                    let t = Instant::now();
                    engine.method(&mut ctx, mthd::LAUNCH_DMA, launch).unwrap();
                    let s = t.elapsed().as_secs_f64();
                    modelled_ns = timing.copy_ns(ctx.read, ctx.write);
                    s
                })
                .collect(),
        );
        rows.push(Row {
            name,
            wall_s: wall,
            modelled_ns,
            configured_gbps,
        });
    }

    let gbps = |bytes: u64, s: f64| bytes as f64 / s / 1e9;
    println!("Copy of {mib} MiB; wall time is the median of {RUNS} runs on this host.\n");
    println!(
        "| copy | wall GB/s | % of host memcpy | modelled time | modelled GB/s | configured GB/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| host memcpy, guest RAM -> VRAM mappings | {:.2} | 100 % | | | |",
        gbps(len, memcpy_s)
    );
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.0} % | {:.1} us | {:.1} | {:.0} |",
            r.name,
            gbps(len, r.wall_s),
            100.0 * memcpy_s / r.wall_s,
            r.modelled_ns as f64 / 1e3,
            len as f64 / r.modelled_ns as f64,
            r.configured_gbps
        );
    }
}
