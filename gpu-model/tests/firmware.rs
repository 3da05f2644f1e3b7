//! Firmware boot: the image is checked, and no channel runs before it or on an engine it did not enable.

mod common;

use common::*;

#[test]
fn firmware_is_checked_before_engines_run() {
    let (gpu, _ram) = fresh_gpu();
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), 0, "not booted");
    let good = rsvm_firmware::build(&rsvm_firmware::default_image());
    let mut bad = good.clone();
    bad[30] ^= 1;
    boot(&gpu, &bad);
    let st = gpu.bar0_read(boot::MAILBOX0);
    assert_eq!(
        st,
        boot::STATUS_ERROR | rsvm_firmware::Error::BadChecksum as u32
    );
    boot(&gpu, &good[..good.len() - 4]);
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::BadSize as u32
    );
    let mut other = rsvm_firmware::default_image();
    other.chip = 0x14;
    boot(&gpu, &rsvm_firmware::build(&other));
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::WrongChip as u32
    );
    assert_eq!(gpu.bar0_read(boot::ENGINES), 0);
    // DMA outside guest memory.
    gpu.bar0_write(boot::DMA_BASE_LO, 0xf000_0000);
    gpu.bar0_write(boot::DMA_SIZE, good.len() as u32);
    gpu.bar0_write(boot::CPUCTL, boot::CPUCTL_STARTCPU);
    assert_eq!(
        gpu.bar0_read(boot::MAILBOX0),
        boot::STATUS_ERROR | rsvm_firmware::Error::Unreachable as u32
    );

    boot(&gpu, &good);
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
    assert_eq!(gpu.bar0_read(boot::MAILBOX1), 1 << 16);
    assert_eq!(gpu.bar0_read(boot::ENGINES), 3);
    // A second STARTCPU changes nothing.
    boot(&gpu, &bad);
    assert_eq!(gpu.bar0_read(boot::MAILBOX0), boot::STATUS_RUNNING);
}

#[test]
fn no_channel_runs_before_boot_and_only_enabled_engines_exist() {
    let mut r = Rig::unbooted(2);
    r.submit(0, &sem_release(5));
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        0,
        "no firmware: nothing ran"
    );
    // A copy-only image: the compute class does not exist.
    let mut img = rsvm_firmware::default_image();
    img.engines = rsvm_firmware::ENGINE_COPY;
    boot(&r.gpu, &rsvm_firmware::build(&img));
    r.kick(0);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 5, "runs once booted");
    r.submit(1, &m(GR_SUBCH, 0, compute::CLASS));
    assert_eq!(r.error_of(1), Some(ErrorCode::InvalidClass));
}
