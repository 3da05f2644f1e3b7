//! Replayable faults: batching, replay, cancel (targeted to one address space), read-only violations.

mod common;

use common::*;

#[test]
fn replayable_faults_are_batched_then_replayed() {
    let mut r = Rig::new(1);
    r.replay_buffer(128);
    r.gpu
        .bar0_write(fault::NISO_INTR_EN_SET, NISO_REPLAYABLE_NOTIFY);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_HUB);
    // in[] lives in the hole: 64 threads x 8 bytes, two pages.
    r.load_double(HOLE_VA + 0xf00);
    let pb = r.launch(DATA_VA, 64, 0);
    r.submit(0, &pb);

    assert_eq!(r.replay_put(), 64, "every thread reported one fault");
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_HUB != 0);
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[0].chid as usize].replay_wait));
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000 + 32 * 63), &mut pkt)
        .unwrap();
    let dw = |i: usize| u32::from_le_bytes(pkt[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(dw(2), (HOLE_VA + 0x1000) as u32, "thread 63's page");
    assert_eq!(dw(6), u32::from(fault::engine::GRAPHICS));
    let info = dw(7);
    assert_eq!(info & 0x1f, 0, "PDE: the 2 MiB region is empty");
    assert!(info & (1 << 7) != 0 && info & (1 << 30) != 0, "replayable");
    assert_eq!(info & (1 << 20), 0, "GPC client");

    // A doorbell while stalled reports nothing new.
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, r.chans[0].chid);
    r.gpu.run_pending();
    assert_eq!(r.replay_put(), 64);

    // Preempting a channel stalled on a replayable fault completes.
    r.gpu.bar0_write(fifo::PREEMPT, r.chans[0].chid);
    assert_eq!(
        r.gpu.bar0_read(fifo::PREEMPT) & (1 << 20),
        0,
        "PENDING clear"
    );

    // Service: map the pages, consume the entries, replay.
    for k in 0..64u64 {
        r.set_u64(PhysAddr::sys(0xc0_0f00 + 8 * k), k);
    }
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xc0_0000),
        2 * SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    let b1 = fault::FAULT_BUFFER_LO + fault::FAULT_BUFFER_STRIDE;
    r.gpu.bar0_write(b1 + 8, 64);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (1 << 3) | 3); // REPLAY=START, all
    r.gpu.run_pending();
    for k in 0..64u64 {
        assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000 + 8 * k)), 2 * k);
    }
    assert_eq!(r.replay_put(), 64, "no new faults");
    assert_eq!(r.error_of(0), None);
}

#[test]
fn a_replay_without_service_refaults() {
    let mut r = Rig::new(1);
    r.replay_buffer(128);
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 4, 0);
    r.submit(0, &pb);
    assert_eq!(r.replay_put(), 4);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (1 << 3) | 3);
    r.gpu.run_pending();
    assert_eq!(r.replay_put(), 8, "each stalled access faulted again");
}

#[test]
fn cancel_fails_the_job_with_a_reported_error() {
    let mut r = Rig::new(2);
    r.replay_buffer(128);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 4, 0);
    r.submit(0, &pb);
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (4 << 3) | 3); // CANCEL_GLOBAL
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
        ErrorCode::FaultCancelled as u32
    );
    // The other channel is unaffected.
    r.submit(1, &sem_release(9));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 9);
}

#[test]
fn cancel_va_global_through_mem_op_of_another_channel() {
    let mut r = Rig::new(3);
    r.replay_buffer(128);
    // Channel 0 faults on HOLE_VA, channel 1 on HOLE_VA + 1 MiB.
    r.load_double(HOLE_VA);
    r.set_u64(PhysAddr::sys(0x40_0010), HOLE_VA + (1 << 20));
    r.set_u64(PhysAddr::sys(0x40_0018), VID_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let pb = r.launch(DATA_VA + 0x10, 1, 0);
    r.submit(1, &pb);
    assert_eq!(r.replay_put(), 2);
    // Channel 2: MEM_OP invalidate of all PDBs + CANCEL_VA_GLOBAL(HOLE_VA, VIRT_ALL).
    let c = 1 | (5 << 2) | (7 << 7);
    r.submit(
        2,
        &inc(0, fifo::mthd::MEM_OP_A, &[HOLE_VA as u32, 0, c, 0xa << 27]),
    );
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    // The detail is the cancelled page's number, in two registers.
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_INFO),
        (HOLE_VA >> 12) as u32
    );
    assert_eq!(r.gpu.bar0_read(fifo::RSVM_CHANNEL_ERROR_INFO_HI), 0);
    assert_eq!(r.error_of(1), None, "a stall at another address survives");
    assert!(r
        .gpu
        .with_fifo(|f| f.channels[r.chans[1].chid as usize].replay_wait));
}

#[test]
fn write_to_a_read_only_page_is_a_replayable_ro_violation() {
    let mut r = Rig::new(1);
    r.replay_buffer(16);
    r.load_code(&double_kernel());
    let ro = Flags {
        read_only: true,
        ..Default::default()
    };
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xd0_0000),
        SZ_4K,
        SZ_4K,
        ro,
    );
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x100);
    r.set_u64(PhysAddr::sys(0x40_0008), HOLE_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    let info = u32::from_le_bytes(pkt[28..32].try_into().unwrap());
    assert_eq!(info & 0x1f, 6, "RO violation");
    assert_eq!((info >> 16) & 0xf, 1, "write");
    assert_eq!(r.u64_at(PhysAddr::sys(0xd0_0000)), 0, "nothing written");
}

#[test]
fn without_replay_enabled_a_compute_fault_switches_the_channel_out() {
    let mut r = Rig::new(1);
    let b0 = fault::FAULT_BUFFER_LO;
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    let pdb = r.pt.pdb.0.addr as u32;
    r.w(PhysAddr::vid(0x1200), pdb | (1 << 10) | (1 << 11)); // no FAULT_REPLAY_*
    r.load_double(HOLE_VA);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert!(r.pccsr(0) & (1 << 23) != 0, "ENG_FAULTED");
    assert_eq!(
        r.gpu.bar0_read(b0 + 12) & 0xf_ffff,
        1,
        "non-replayable entry"
    );
    r.set_u64(PhysAddr::sys(0xc0_0000), 21);
    r.pt.map(
        &r.gpu.mem(),
        HOLE_VA,
        PhysAddr::sys(0xc0_0000),
        SZ_4K,
        SZ_4K,
        Flags::default(),
    );
    r.gpu
        .bar0_write(PCCSR_CHANNEL + 8 * u64::from(r.chans[0].chid), 1 << 23);
    r.gpu.run_pending();
    assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000)), 42);
}

#[test]
fn cancel_va_global_is_scoped_to_one_pdb_and_every_error_is_reported() {
    let mut r = Rig::new(2);
    r.replay_buffer(128);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(HOLE_VA);
    for ch in 0..2 {
        let pb = r.launch(DATA_VA, 1, 0);
        r.submit(ch, &pb);
    }
    assert_eq!(r.replay_put(), 2);
    let cancel_in = |r: &Rig, pdb: u64| {
        r.gpu
            .bar0_write(NV_PFB_PRI_MMU_INVALIDATE_PDB, ((pdb >> 12) as u32) << 4);
        r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_PDB, 0);
        r.gpu.bar0_write(
            NV_PFB_PRI_MMU_INVALIDATE_VADDR,
            ((HOLE_VA >> 12) as u32) << 4,
        );
        r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE_UPPER_VADDR, 0);
        // TRIGGER, neither ALL_VA nor ALL_PDB, REPLAY = CANCEL_VA_GLOBAL.
        r.gpu
            .bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | (5 << 3));
    };
    // Another address space's cancel leaves these stalls alone.
    cancel_in(&r, 0x70_0000);
    assert_eq!((r.error_of(0), r.error_of(1)), (None, None));
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
    // Their own cancels both; each error is reported, one after the other.
    cancel_in(&r, r.pt.pdb.0.addr);
    assert_eq!(r.error_of(0), Some(ErrorCode::FaultCancelled));
    assert_eq!(r.error_of(1), Some(ErrorCode::FaultCancelled));
    let mut seen = vec![];
    while r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0 {
        seen.push(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID));
        assert_eq!(
            r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
            ErrorCode::FaultCancelled as u32
        );
        r.gpu.bar0_write(fifo::PFIFO_INTR_0, PFIFO_INTR_CHANNEL);
    }
    assert_eq!(seen, vec![r.chans[0].chid, r.chans[1].chid]);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
}
