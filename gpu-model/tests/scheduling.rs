//! The runlist and channels: scheduling, errors that stop only their channel, PBDMA faults, method headers, unbinding, and the debug counters.

mod common;

use common::*;

#[test]
fn sched_disable_stops_the_runlist_until_enabled() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::SCHED_DISABLE, 1);
    r.gpu.bar0_write(fifo::RUNLIST_PREEMPT, 1);
    assert_eq!(
        r.gpu.bar0_read(fifo::RUNLIST_PREEMPT),
        0,
        "preempt complete"
    );
    r.submit(0, &sem_release(4));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 0, "scheduling disabled");
    r.gpu.bar0_write(fifo::SCHED_DISABLE, 0);
    r.gpu.run_pending();
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 4);
}

#[test]
fn invalid_method_puts_only_that_channel_in_error() {
    let mut r = Rig::new(2);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_0, PMC_INTR_PFIFO);
    r.submit(0, &m(0, 0x0ff0 & !3, 1)); // no such host method
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), r.chans[0].chid);
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CODE),
        ErrorCode::InvalidMethod as u32
    );
    // The other channel still works.
    r.submit(1, &sem_release(3));
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 3);
    // Unknown class, CE method without an object, bad header.
    let mut r = Rig::new(3);
    r.submit(0, &m(0, 0, 0xc0c0));
    r.submit(1, &m(2, ce::mthd::LAUNCH_DMA, 0));
    r.submit(2, &[6 << 29]);
    let codes: Vec<_> = r.gpu.with_fifo(|f| {
        r.chans
            .iter()
            .map(|c| f.channels[c.chid as usize].error)
            .collect()
    });
    assert_eq!(
        codes,
        [
            Some(ErrorCode::InvalidClass),
            Some(ErrorCode::InvalidMethod),
            Some(ErrorCode::InvalidPushbuffer)
        ]
    );
}

#[test]
fn pushbuffer_fetch_fault_is_a_pbdma_fault() {
    let r = Rig::new(1);
    r.fault_buffer(fault::NON_REPLAYABLE, 8);
    // A GP entry pointing at unmapped VA 0x900_0000.
    let c = &r.chans[0];
    r.w(c.gpfifo, 0x900_0000);
    r.w(c.gpfifo.offset(4), 4 << 10);
    r.w(c.userd.offset(0x8c), 1);
    r.gpu.bar0_write(NOTIFY_CHANNEL_PENDING, c.chid);
    r.gpu.run_pending();
    assert!(r.pccsr(0) & (1 << 22) != 0, "PBDMA_FAULTED");
    let mut pkt = [0u8; 32];
    r.gpu
        .mem()
        .read(PhysAddr::sys(0x60_0000), &mut pkt)
        .unwrap();
    assert_eq!(
        u32::from_le_bytes(pkt[24..28].try_into().unwrap()),
        u32::from(fault::engine::HOST0)
    );
}

#[test]
fn immediate_and_non_incrementing_headers() {
    let mut r = Rig::new(1);
    // IMMD: SEM_ADDR_HI = 0 with data in the header; NON_INC: SEM_PAYLOAD_LO
    // written three times, the last value wins.
    let mut pb = m(0, fifo::mthd::SEM_ADDR_LO, SEM_VA as u32 + 0x20);
    pb.push(hdr(4, 0, fifo::mthd::SEM_ADDR_HI, 0));
    pb.extend([hdr(3, 0, fifo::mthd::SEM_PAYLOAD_LO, 3), 1, 2, 0x77]);
    pb.extend(m(0, fifo::mthd::SEM_PAYLOAD_HI, 0));
    pb.push(hdr(4, 0, fifo::mthd::SEM_EXECUTE, 1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0020)), 0x77);
}

#[test]
fn unbinding_a_channel_drops_its_pending_error_and_the_interrupt() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.submit(0, &m(GR_SUBCH, 0x2fc, 1));
    assert!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO != 0);
    r.gpu
        .bar0_write(PCCSR_CHANNEL_INST + 8 * u64::from(r.chans[0].chid), 0);
    assert_eq!(r.gpu.bar0_read(RSVM_CHANNEL_ERROR_CHID), u32::MAX);
    // Nothing left to acknowledge: a later error must be a new edge.
    assert_eq!(r.gpu.bar0_read(NV_PMC_INTR_0) & PMC_INTR_PFIFO, 0);
}

#[test]
fn debug_counters_count_bar0_accesses() {
    let r = Rig::new(1);
    r.gpu.bar0_write(RSVM_DEBUG_BAR0_READS_LO, 0);
    assert_eq!(r.gpu.bar0_accesses(), (0, 0));
    r.gpu.bar0_read(NV_PMC_BOOT_0);
    r.gpu.bar0_read(NV_PMC_INTR_0);
    r.gpu.bar0_write(NV_PBUS_SW_SCRATCH, 1);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_READS_LO), 2);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_WRITES_LO), 1);
    assert_eq!(r.gpu.bar0_read(RSVM_DEBUG_BAR0_READS_HI), 0);
    assert_eq!(r.gpu.bar0_accesses(), (2, 1), "reading them is not counted");
}
