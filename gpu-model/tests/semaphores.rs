//! Host semaphores: acquire, release, reductions, and the timestamps of the timing model.

mod common;

use common::*;

#[test]
fn semaphore_acquire_blocks_until_the_cpu_releases() {
    let mut r = Rig::new(1);
    let mut pb = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32, 0, 5, 0]);
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 2)); // ACQ_STRICT_GEQ 5
    pb.extend(inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32 + 8, 0, 99, 0],
    ));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 0, "blocked");
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[0].chid as usize].blocked));
    r.w(PhysAddr::sys(0x50_0000), 4);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 0, "4 < 5: still blocked");
    r.w(PhysAddr::sys(0x50_0000), 5);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0008)), 99);
}

#[test]
fn semaphore_reduction_and_timestamped_release() {
    let mut r = Rig::new(1);
    r.w(PhysAddr::sys(0x50_0000), 10);
    let mut pb = inc(0, fifo::mthd::SEM_ADDR_LO, &[SEM_VA as u32, 0, 5, 0]);
    let iadd_unsigned = 6 | (5 << 27) | (1 << 31);
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, iadd_unsigned));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, iadd_unsigned));
    pb.extend(inc(
        0,
        fifo::mthd::SEM_ADDR_LO,
        &[SEM_VA as u32 + 0x10, 0, 0xaa, 0xbb],
    ));
    pb.extend(m(0, fifo::mthd::SEM_EXECUTE, 1 | (1 << 24))); // 64-bit payload
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 20);
    assert_eq!(r.u64_at(PhysAddr::sys(0x50_0010)), 0xbb_0000_00aa);
}

#[test]
fn timestamps_measure_modelled_engine_time() {
    let mut r = Rig::new(1);
    let mut pb = timestamp(0x20);
    pb.extend(copy_methods(DATA_VA, VID_VA, 64 << 10)); // sysmem -> VRAM
    pb.extend(timestamp(0x40));
    pb.extend(copy_methods(VID_VA, VID_VA + (64 << 10), 64 << 10)); // VRAM -> VRAM
    pb.extend(timestamp(0x60));
    r.submit(0, &pb);
    let t = |o: u64| r.u64_at(PhysAddr::sys(0x50_0000 + o + 8));
    let timing = rsvm_gpu::timing::Timing::default();
    let k64 = 64 << 10;
    let sys_to_vid = timing.copy_ns(Traffic { vram: 0, sys: k64 }, Traffic { vram: k64, sys: 0 });
    let vid_to_vid = timing.copy_ns(Traffic { vram: k64, sys: 0 }, Traffic { vram: k64, sys: 0 });
    assert_eq!(t(0x40) - t(0x20), sys_to_vid);
    assert_eq!(t(0x60) - t(0x40), vid_to_vid);
    assert!(
        sys_to_vid > 10 * vid_to_vid / 2,
        "the link is the slow path"
    );
    assert_eq!(
        r.gpu.bar0_read(fifo::USERMODE_TIME_1),
        (t(0x60) >> 32) as u32
    );
    // The clock never runs behind a timestamp it wrote.
    assert!(r.gpu.clock_ns() >= t(0x60));
}
