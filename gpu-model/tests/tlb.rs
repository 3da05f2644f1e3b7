//! The strict TLB: a stale translation until a MEM_OP or register-path invalidate.

mod common;

use common::*;

#[test]
fn stale_translation_until_mem_op_invalidate() {
    let mut r = Rig::new(1);
    remap_cached_page(&mut r);
    // No invalidate yet: the copy still reads the old page.
    r.submit(0, &copy_methods(DATA_VA, VID_VA + 16, 4));
    let mut b = [0u8; 4];
    r.gpu.mem().read(PhysAddr::vid(0x80_0010), &mut b).unwrap();
    assert_eq!(&b, b"old!");
    // MEM_OP targeted invalidate of one page of this PDB, then copy again.
    let pdb = r.pt.pdb.0.addr as u32;
    let mut pb = inc(
        0,
        fifo::mthd::MEM_OP_A,
        &[DATA_VA as u32, 0, pdb, 0xa << 27],
    );
    pb.extend(copy_methods(DATA_VA, VID_VA + 32, 4));
    r.submit(0, &pb);
    r.gpu.mem().read(PhysAddr::vid(0x80_0020), &mut b).unwrap();
    assert_eq!(&b, b"new!");
}

#[test]
fn register_path_invalidate() {
    let mut r = Rig::new(1);
    remap_cached_page(&mut r);
    // PDB then INVALIDATE(ALL_VA | TRIGGER), as nouveau does.
    r.gpu
        .bar0_write(NV_PFB_PRI_MMU_INVALIDATE_PDB, (r.pt.pdb.0.addr >> 8) as u32);
    r.gpu.bar0_write(NV_PFB_PRI_MMU_INVALIDATE, (1 << 31) | 1);
    assert!(r.gpu.bar0_read(NV_PFB_PRI_MMU_CTRL) & MMU_CTRL_PRI_FIFO_EMPTY != 0);
    r.submit(0, &copy_methods(DATA_VA, VID_VA + 16, 4));
    let mut b = [0u8; 4];
    r.gpu.mem().read(PhysAddr::vid(0x80_0010), &mut b).unwrap();
    assert_eq!(&b, b"new!");
}
