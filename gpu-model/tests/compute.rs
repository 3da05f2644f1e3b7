//! The model-private compute engine: kernels in RV64 and in C, walks of CPU-built data, atomics, and failing kernels.

mod common;

use common::*;

#[test]
fn compute_kernel_reads_sysmem_and_writes_vram() {
    let mut r = Rig::new(1);
    r.load_code(&double_kernel());
    let n = 200u64;
    for k in 0..n {
        r.set_u64(PhysAddr::sys(0x40_0000 + 0x100 + 8 * k), 1000 + k);
    }
    // args at DATA_VA: [in, out]
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x100);
    r.set_u64(PhysAddr::sys(0x40_0008), VID_VA);
    r.gpu.bar0_write(NV_PMC_INTR_EN_SET_1, NONSTALL_COMPUTE);
    let mut pb = r.launch(DATA_VA, n as u32, 1);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    for k in 0..n {
        assert_eq!(r.u64_at(PhysAddr::vid(0x80_0000 + 8 * k)), 2 * (1000 + k));
    }
    assert_eq!(
        r.r32(PhysAddr::sys(0x50_0000)),
        1,
        "the release after the grid"
    );
    assert!(r.gpu.bar0_read(NV_PMC_INTR_1) & NONSTALL_COMPUTE != 0);
}

#[test]
fn compute_walks_a_cpu_built_linked_list() {
    let mut r = Rig::new(1);
    // sum = 0; for (p = head; p; p = p->next) sum += p->val; *out = sum
    r.load_code(&[
        ld(T0, A0, 0),
        addi(T1, ZERO, 0),
        beq(T0, ZERO, 20),
        ld(T2, T0, 8),
        add(T1, T1, T2),
        ld(T0, T0, 0),
        jal(ZERO, -16),
        ld(T3, A0, 8),
        sd(T1, T3, 0),
        ECALL,
    ]);
    // Nodes {next, val} scattered over the data pages, linked in a shuffled order.
    let order = [7u64, 2, 11, 5, 0, 14, 9, 3];
    let head = scattered_list(&r, &order, |k| 0x400 + k * 0x7f8, |k| 10 * (k + 1)); // nodes cross pages
    r.set_u64(PhysAddr::sys(0x40_0000), head);
    r.set_u64(PhysAddr::sys(0x40_0008), DATA_VA + 0x200);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    let want: u64 = order.iter().map(|k| 10 * (k + 1)).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0200)), want);
}

#[test]
fn a_c_kernel_walks_a_cpu_built_linked_list() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::LIST_SUM);
    // struct node { next, value }, scattered and linked out of order.
    let order = [5u64, 12, 1, 9, 30, 2, 17];
    let head = scattered_list(&r, &order, |k| 0x800 + k * 0x1f0, |k| 1000 + k);
    // struct args { head, sum, count } at offset 0.
    data_u64(&r, 0, head);
    data_u64(&r, 8, DATA_VA + 0x100);
    data_u64(&r, 16, DATA_VA + 0x108);
    let mut pb = r.launch(DATA_VA, 4, 0);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    let want: u64 = order.iter().map(|k| 1000 + k).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), want);
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0108)), order.len() as u64);
}

#[test]
fn a_c_kernel_sums_a_tree_with_a_grid() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::TREE_SUM);
    // A complete tree of 63 nodes { left, right, value } in heap order.
    let nodes = 63u64;
    let at = |i: u64| 0x400 + i * 24;
    for i in 0..nodes {
        let child = |c: u64| if c < nodes { DATA_VA + at(c) } else { 0 };
        data_u64(&r, at(i), child(2 * i + 1));
        data_u64(&r, at(i) + 8, child(2 * i + 2));
        data_u64(&r, at(i) + 16, i * i + 1);
    }
    // struct args { root, depth, sum }: 2^3 threads below level 3.
    data_u64(&r, 0, DATA_VA + at(0));
    data_u64(&r, 8, 3);
    data_u64(&r, 16, DATA_VA + 0x100);
    data_u64(&r, 0x100, 0);
    let mut pb = r.launch_with_stack(DATA_VA, 8, 0, 2048);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    let want: u64 = (0..nodes).map(|i| i * i + 1).sum();
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), want);
}

#[test]
fn a_c_kernel_counts_atomically_from_every_thread() {
    let mut r = Rig::new(1);
    r.load_image(rsvm_kernels::ATOMIC_INC);
    // struct args { counter, iterations }; the counter starts at 7.
    data_u64(&r, 0, DATA_VA + 0x100);
    data_u64(&r, 8, 50);
    data_u64(&r, 0x100, 7);
    let mut pb = r.launch(DATA_VA, 64, 0);
    pb.extend(sem_release(1));
    r.submit(0, &pb);
    assert_eq!(r.r32(PhysAddr::sys(0x50_0000)), 1, "the job completed");
    assert_eq!(r.u64_at(PhysAddr::sys(0x40_0100)), 7 + 64 * 50);
}

#[test]
fn gpu_and_cpu_atomics_on_one_counter_lose_nothing() {
    let mut r = Rig::new(1);
    // for (i = iters; i; i--) amoadd.d(counter, 1)
    r.load_code(&[
        ld(T0, A0, 0),
        ld(T1, A0, 8),
        addi(T2, ZERO, 1),
        beq(T1, ZERO, 16),
        amoadd_d(ZERO, T2, T0),
        addi(T1, T1, -1),
        jal(ZERO, -12),
        ECALL,
    ]);
    let counter = 0x40_0800u64;
    r.set_u64(PhysAddr::sys(0x40_0000), DATA_VA + 0x800);
    r.set_u64(PhysAddr::sys(0x40_0008), 2000);
    let pb = r.launch(DATA_VA, 32, 0);
    r.queue(0, &pb);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cpu_adds = std::thread::scope(|s| {
        let ram = &r._ram;
        let stop2 = stop.clone();
        let cpu = s.spawn(move || {
            let mut n = 0u64;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) || n < 10_000 {
                ram.atomic64(counter, |a| {
                    a.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                })
                .unwrap();
                n += 1;
            }
            n
        });
        r.kick(0);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        cpu.join().unwrap()
    });
    assert_eq!(r.u64_at(PhysAddr::sys(counter)), 32 * 2000 + cpu_adds);
}

#[test]
fn broken_kernels_fail_the_job() {
    let mut r = Rig::new(3);
    r.load_code(&[0]); // not an instruction
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert_eq!(r.error_of(0), Some(ErrorCode::JobFailed));
    r.load_code(&[EBREAK]);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(1, &pb);
    assert_eq!(r.error_of(1), Some(ErrorCode::JobFailed));
    r.load_code(&[jal(ZERO, 0)]); // spins forever
    let mut pb = m(GR_SUBCH, 0, compute::CLASS);
    pb.extend(m(GR_SUBCH, compute::mthd::SET_INSTRUCTION_LIMIT, 100_000));
    pb.extend(r.launch(DATA_VA, 1, 0));
    r.submit(2, &pb);
    assert_eq!(r.error_of(2), Some(ErrorCode::JobFailed));
}

#[test]
fn a_misaligned_access_is_its_own_error_with_its_address() {
    let mut r = Rig::new(1);
    r.gpu.bar0_write(fifo::PFIFO_INTR_EN_0, PFIFO_INTR_CHANNEL);
    r.load_double(DATA_VA + 0x101);
    let pb = r.launch(DATA_VA, 1, 0);
    r.submit(0, &pb);
    assert_eq!(r.error_of(0), Some(ErrorCode::Misaligned));
    assert_eq!(
        r.gpu.bar0_read(RSVM_CHANNEL_ERROR_INFO),
        (DATA_VA + 0x101) as u32
    );
}
