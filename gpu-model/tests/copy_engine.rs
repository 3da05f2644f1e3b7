//! The copy engine through a channel: copies, semaphores, the non-stall interrupt, and its non-replayable faults (switched out until cleared).

mod common;

use common::*;

#[test]
fn copy_semaphore_and_nonstall_interrupt_through_a_channel() {
    let mut r = Rig::new(1);
    // SAFETY: plain syscall; checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: `fd` is ours; the dup shares the counter.
    let (tx, mut rx) = unsafe { (File::from_raw_fd(fd), File::from_raw_fd(libc::dup(fd))) };
    r.gpu.msix.set(0, [Some(tx)]);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_1, NONSTALL_HOST);

    let data = pattern(3 * 4096 + 100);
    r.gpu.mem().write(PhysAddr::sys(0x40_0000), &data).unwrap();
    let mut pb = copy_methods(DATA_VA, VID_VA + 0x8000, data.len() as u32);
    pb.extend(sem_release(0x1234));
    pb.extend(m(0, fifo::mthd::NON_STALL_INTERRUPT, 0));
    r.submit(0, &pb);

    let mut out = vec![0; data.len()];
    r.gpu
        .mem()
        .read(PhysAddr::vid(0x80_8000), &mut out)
        .unwrap();
    assert_eq!(out, data);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0x1234);
    assert_eq!(r.gp_get(0), 1, "GP_GET written back to USERD");
    assert_eq!(
        r.gpu.bar0_read(NV_PMC_INTR_1) & NONSTALL_HOST,
        NONSTALL_HOST
    );
    let mut b = [0u8; 8];
    assert_eq!(rx.read(&mut b).unwrap(), 8, "MSI-X sent");
    r.gpu.bar0_write(NV_PMC_INTR_1, NONSTALL_HOST);
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_1), 0);
}

#[test]
fn copy_engine_fault_switches_the_channel_out_until_cleared() {
    let mut r = Rig::new(1);
    // Non-replayable buffer in sysmem at 0x60_0000, 8 entries.
    let b0 = fault::FAULT_BUFFER_LO;
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    r.gpu
        .bar0_write(fault::NISO_INTR_EN_SET, NISO_NON_REPLAYABLE_NOTIFY);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_HUB);

    let data = pattern(8192);
    r.gpu.mem().write(PhysAddr::sys(0x40_0000), &data).unwrap();
    // Destination 0x700_0000 is not mapped yet.
    let mut pb = copy_methods(DATA_VA, 0x700_0000, 8192);
    pb.extend(sem_release(7));
    r.submit(0, &pb);

    assert!(r.pccsr(0) & (1 << 23) != 0, "ENG_FAULTED");
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        0,
        "the release after the copy has not run"
    );
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB != 0);
    assert_eq!(r.gpu.bar0_read(b0 + 12), 1, "one entry");
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    let dw = |i: usize| u32::from_le_bytes(pkt[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(dw(0) & 0xffff_f000, 0x1000, "instance block");
    assert_eq!((dw(2), dw(3)), (0x700_0000, 0));
    assert_eq!(dw(6), u32::from(fault::engine::CE0));
    let info = dw(7);
    assert_eq!(info & 0x1f, 0, "PDE: nothing maps that 2 MiB region yet");
    assert_eq!((info >> 16) & 0xf, 1, "write");
    assert_eq!((info >> 8) & 0x7f, u32::from(fault::client::HUB_CE0));
    assert!(info & (1 << 20) != 0 && info & (1 << 7) == 0 && info & (1 << 31) != 0);

    // A doorbell does not run a faulted channel.
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, r.chans[0].chid);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0);

    // Service: map the page, consume the entry, clear ENG_FAULTED.
    r.pt.map(
        &r.gpu.mem(),
        0x700_0000,
        PhysAddr::sys(0x70_0000),
        2 * SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    r.gpu.bar0_write(b0 + 8, 1);
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB, 0);
    r.gpu
        .bar0_write(PCCSR_CHANNEL + 8 * u64::from(r.chans[0].chid), 1 << 23);
    r.gpu.run_pending();
    let mut out = vec![0; 8192];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x70_0000), &mut out)
        .unwrap();
    assert_eq!(out, data, "the LAUNCH_DMA ran again");
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 7);
}

#[test]
fn clear_faulted_method_from_another_channel() {
    let mut r = Rig::new(2);
    r.submit(0, &copy_methods(DATA_VA, 0x700_0000, 16));
    assert!(r.pccsr(0) & (1 << 23) != 0);
    r.pt.map(
        &r.gpu.mem(),
        0x700_0000,
        PhysAddr::sys(0x70_0000),
        SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    let chid0 = r.chans[0].chid;
    r.submit(1, &m(0, fifo::mthd::CLEAR_FAULTED, (1 << 31) | chid0));
    assert_eq!(r.pccsr(0) & (1 << 23), 0);
    assert_eq!(r.gp_get(0), 1);
}
