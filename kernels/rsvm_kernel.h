/* SPDX-License-Identifier: MIT */
/*
 * Writing compute kernels for the rsvm GPU's model-private compute class
 * (RSVM_COMPUTE_A, 0x52c0) in C.
 *
 * The engine runs RV64IMA (no compressed instructions) over a grid of
 * threads. Each thread enters at the code address with a0 = the argument
 * pointer, a1 = its index, a2 = the grid size and sp = the top of its stack
 * slice, and ends with ecall (ebreak fails the job). Every fetch, load,
 * store and atomic goes through the channel's GPU address space, which with
 * SVM is the calling process's own: kernels follow the pointers of data
 * structures the CPU built with malloc.
 *
 * A kernel is one C file defining
 *
 *     RSVM_KERNEL(name, struct my_args *args, u64 tid, u64 nthreads) { ... }
 *
 * built by scripts/kernel-cc.sh into a flat, position-independent binary
 * whose first instruction is the entry point. No libc; no writable globals
 * (every thread would share them); static data must hold no pointers.
 */
#ifndef RSVM_KERNEL_H
#define RSVM_KERNEL_H

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;
typedef int s32;
typedef unsigned char u8;

/*
 * The entry stub: the engine starts at offset 0 with the arguments in
 * a0..a2 and the stack set; return ends the thread with ecall.
 */
#define RSVM_KERNEL(name, args_decl, tid_decl, n_decl)                     \
	static void name(args_decl, tid_decl, n_decl);                     \
	__attribute__((section(".text.entry"), naked, used)) void          \
	__rsvm_entry(void)                                                 \
	{                                                                  \
		__asm__ volatile("call " #name "\n\tecall\n");             \
	}                                                                  \
	static __attribute__((used, noinline)) void name(args_decl, tid_decl, n_decl)

/* Fails the job (the engine reports an ebreak). */
static inline __attribute__((noreturn)) void rsvm_trap(void)
{
	__asm__ volatile("ebreak");
	__builtin_unreachable();
}

/* Atomics on any memory the GPU maps (RV64A AMOs, sequentially consistent). */
static inline u64 rsvm_atomic_add(u64 *p, u64 v)
{
	return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

static inline u32 rsvm_atomic_add32(u32 *p, u32 v)
{
	return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

static inline u64 rsvm_atomic_load(const u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

#endif
