//! The host class `VOLTA_CHANNEL_GPFIFO_A` (`clc36f.h`): methods executed
//! by the host itself (semaphores, `MEM_OP`, `NON_STALL_INTERRUPT`, ...),
//! and the dispatch of engine methods to the copy and compute engines.

use super::*;

impl Fifo {
    pub(super) fn exec(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { subch, m, data } = call;
        if m < 0x100 {
            return self.host_method(chid, pdb, env, ev, call);
        }
        let class = self.channels[chid].subch[subch as usize];
        if class == compute::CLASS {
            return self.compute_method(chid, pdb, env, ev, call);
        }
        if class != ce::CLASS {
            return Err(Stop::Error(ErrorCode::InvalidMethod, m));
        }
        let c = &mut self.channels[chid];
        let mut ctx = ce::Context {
            mem: env.mem,
            tlb: env.tlb,
            pdb,
            privileged: false,
            now_ns: env.now_ns,
            read: Traffic::default(),
            write: Traffic::default(),
        };
        let result = c.ce.method(&mut ctx, m, data);
        env.now_ns += env.timing.copy_ns(ctx.read, ctx.write);
        match result {
            Ok(l) => {
                ev.ce_nonstall |= l.nonstall_interrupt;
                ev.stall |= l.stall_interrupt;
                Ok(())
            }
            Err(CeError::Fault {
                va,
                access,
                fault_type,
            }) => {
                c.retry = Some(call);
                Err(self.fault(
                    chid,
                    env,
                    FaultInfo::new(va, access, fault_type),
                    Source::Copy,
                ))
            }
            Err(CeError::Invalid(why)) => {
                log::warn!("channel {chid}: copy engine: {why}");
                Err(Stop::Error(ErrorCode::InvalidEncoding, m))
            }
            Err(CeError::Mem(e)) => {
                Err(Stop::Error(ErrorCode::BadPhysicalAccess, e.at.addr as u32))
            }
        }
    }

    pub(super) fn compute_method(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { m, data, .. } = call;
        let invalid = |why: &str| {
            log::warn!("channel {chid}: compute: {why}");
            Stop::Error(ErrorCode::InvalidEncoding, m)
        };
        if m != compute::mthd::LAUNCH {
            return self.channels[chid].compute.method(m, data).map_err(invalid);
        }
        self.channels[chid].compute.launch(data).map_err(invalid)?;
        let replayable = self.replayable(chid, env.mem);
        let mut faults = Vec::new();
        let mut ctx = compute::Context {
            mem: env.mem,
            tlb: env.tlb,
            pdb,
            budget: COMPUTE_BUDGET,
            retired: 0,
            traffic: Traffic::default(),
        };
        let run = self.channels[chid].compute.run(&mut ctx, &mut |va, a, t| {
            faults.push(FaultInfo::new(va, a, t))
        });
        ev.instructions += ctx.retired;
        env.now_ns += env.timing.compute_ns(ctx.retired, ctx.traffic);
        for f in faults {
            self.report(chid, env, f, Source::Compute, replayable);
        }
        let c = &mut self.channels[chid];
        match run {
            Run::Done { interrupt } => {
                ev.compute_nonstall |= interrupt;
                Ok(())
            }
            Run::Yield => {
                c.retry = Some(call);
                Err(Stop::Yield)
            }
            Run::Stalled if replayable => {
                c.retry = Some(call);
                Err(Stop::Waiting)
            }
            Run::Stalled => {
                // Not replayable: fault and switch, like the copy engine;
                // once ENG_FAULTED is cleared the stalled accesses retry.
                c.retry = Some(call);
                c.compute.replay();
                c.eng_faulted = true;
                Err(Stop::Faulted)
            }
            Run::Error(why) => {
                log::warn!("channel {chid}: compute job failed: {why}");
                Err(Stop::Error(ErrorCode::JobFailed, m))
            }
            Run::Misaligned(va) => {
                log::warn!("channel {chid}: compute: misaligned access at {va:#x}");
                Err(Stop::ErrorAt(ErrorCode::Misaligned, va))
            }
        }
    }

    /// A semaphore access by the host (a PBDMA access: privileged).
    pub(super) fn sem_access(
        env: &mut Env<'_>,
        pdb: Option<Pdb>,
        va: u64,
        access: Access,
    ) -> Result<Option<PhysAddr>, (u64, WalkError)> {
        let pdb = pdb.ok_or((va, WalkError::Fault(FaultType::UnboundInstBlock)))?;
        let t = env.tlb.translate(env.mem, pdb, va).map_err(|e| (va, e))?;
        t.check(access, true)
            .map_err(|f| (va, WalkError::Fault(f)))?;
        Ok(t.resolve(va))
    }

    pub(super) fn host_method(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        ev: &mut Events,
        call: Call,
    ) -> Result<(), Stop> {
        let Call { subch, m, data: v } = call;
        let c = &mut self.channels[chid];
        match m {
            mthd::SET_OBJECT => {
                let class = v & 0xffff;
                let enabled = match class {
                    ce::CLASS => self.engines & rsvm_firmware::ENGINE_COPY != 0,
                    compute::CLASS => self.engines & rsvm_firmware::ENGINE_COMPUTE != 0,
                    _ => false,
                };
                let c = &mut self.channels[chid];
                if !enabled {
                    return Err(Stop::Error(ErrorCode::InvalidClass, class));
                }
                c.subch[subch as usize] = class;
            }
            mthd::NOP | mthd::WFI => {}
            mthd::NON_STALL_INTERRUPT => ev.nonstall = true,
            mthd::SET_REFERENCE => {
                let userd = c.userd.ok_or(Stop::Error(ErrorCode::InvalidInstance, 1))?;
                env.mem.write_u32(userd.offset(0x48), v)?;
            }
            mthd::SEM_ADDR_LO => c.sem_addr = (c.sem_addr & !0xffff_ffff) | u64::from(v & !3),
            mthd::SEM_ADDR_HI => {
                c.sem_addr = (c.sem_addr & 0xffff_ffff) | (u64::from(v & 0xff) << 32)
            }
            mthd::SEM_PAYLOAD_LO => c.sem_payload = (c.sem_payload & !0xffff_ffff) | u64::from(v),
            mthd::SEM_PAYLOAD_HI => {
                c.sem_payload = (c.sem_payload & 0xffff_ffff) | (u64::from(v) << 32)
            }
            mthd::SEM_EXECUTE => return self.sem_execute(chid, pdb, env, subch, v),
            mthd::MEM_OP_A | mthd::MEM_OP_B | mthd::MEM_OP_C => {
                c.mem_op[((m - mthd::MEM_OP_A) / 4) as usize] = v;
            }
            mthd::MEM_OP_D => {
                let [a, b, cc] = c.mem_op;
                self.mem_op(env, a, b, cc, v)?;
            }
            mthd::CLEAR_FAULTED => {
                let target = (v & 0xfff) as usize;
                let Some(t) = self.channels.get_mut(target) else {
                    return Err(Stop::Error(ErrorCode::InvalidEncoding, v));
                };
                if v & (1 << 31) != 0 {
                    t.eng_faulted = false;
                } else {
                    t.pbdma_faulted = false;
                }
                t.kicked = true;
            }
            _ => return Err(Stop::Error(ErrorCode::InvalidMethod, m)),
        }
        Ok(())
    }

    pub(super) fn mem_op(
        &mut self,
        env: &mut Env<'_>,
        a: u32,
        b: u32,
        c: u32,
        d: u32,
    ) -> Result<(), Stop> {
        let pdb = || {
            let aperture = target(c >> 10).ok_or(Stop::Error(ErrorCode::InvalidEncoding, c))?;
            Ok::<_, Stop>(Pdb(PhysAddr {
                aperture,
                addr: (u64::from(d & 0x7ff_ffff) << 32) | u64::from(c & 0xffff_f000),
            }))
        };
        let all_pdb = c & 1 != 0;
        match d >> 27 {
            5 => {} // MEMBAR: the model is sequentially consistent
            9 => env.tlb.invalidate(if all_pdb {
                InvalidateScope::All
            } else {
                InvalidateScope::Pdb(pdb()?)
            }),
            0xa => {
                let va = (u64::from(b) << 32) | u64::from(a & 0xffff_f000);
                let size = SZ_4K << (a & 0x3f);
                let va = va & !(size - 1);
                let pdb = if all_pdb { None } else { Some(pdb()?) };
                env.tlb.invalidate(InvalidateScope::Range { pdb, va, size });
            }
            _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, d)),
        }
        let va = (u64::from(b) << 32) | u64::from(a & 0xffff_f000);
        let scope = if all_pdb { None } else { Some(pdb()?) };
        self.replay((c >> 2) & 7, va, (c >> 7) & 7, scope, env.mem)
            .map_err(|code| Stop::Error(code, c))
    }

    pub(super) fn sem_execute(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        subch: u8,
        v: u32,
    ) -> Result<(), Stop> {
        let (va, payload) = (
            self.channels[chid].sem_addr,
            self.channels[chid].sem_payload,
        );
        let wide = v & (1 << 24) != 0;
        let size = if wide { 8 } else { 4 };
        let op = v & 7;
        let access = match op {
            1 => Access::Write,
            6 => Access::Atomic,
            0..=5 => Access::Read,
            _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, v)),
        };
        if va % size != 0 {
            return Err(Stop::Error(ErrorCode::InvalidEncoding, va as u32));
        }
        let pa = match Self::sem_access(env, pdb, va, access) {
            Ok(p) => p,
            Err((va, WalkError::Fault(t))) => {
                self.channels[chid].retry = Some(Call::new(subch, mthd::SEM_EXECUTE, v));
                return Err(self.fault(chid, env, FaultInfo::new(va, access, t), Source::Host));
            }
            Err((_, WalkError::Mem(_))) => {
                return Err(Stop::Error(ErrorCode::BadPhysicalAccess, 4))
            }
            Err((_, WalkError::Encoding(_))) => {
                return Err(Stop::Error(ErrorCode::InvalidEncoding, 5))
            }
        };
        let read = |env: &Env<'_>| -> Result<u64, Stop> {
            match pa {
                None => Ok(0),
                Some(p) if wide => Ok(env.mem.read_u64(p)?),
                Some(p) => Ok(u64::from(env.mem.read_u32(p)?)),
            }
        };
        let write = |env: &Env<'_>, x: u64| -> Result<(), Stop> {
            match pa {
                None => Ok(()),
                Some(p) if wide => Ok(env.mem.write_u64(p, x)?),
                Some(p) => Ok(env.mem.write_u32(p, x as u32)?),
            }
        };
        let mask = if wide { u64::MAX } else { 0xffff_ffff };
        let payload = payload & mask;
        match op {
            1 => {
                write(env, payload)?;
                if v & (1 << 25) != 0 {
                    // Timestamp: the 8 bytes after a 64-bit slot.
                    if let Some(p) = pa {
                        env.mem.write_u64(p.offset(8), env.now_ns)?;
                    }
                }
            }
            6 => {
                let old = read(env)?;
                let signed = v & (1 << 31) == 0;
                let sx = |x: u64| {
                    if wide {
                        x as i64
                    } else {
                        x as u32 as i32 as i64
                    }
                };
                let new = match (v >> 27) & 0xf {
                    0 if signed => sx(old).min(sx(payload)) as u64,
                    1 if signed => sx(old).max(sx(payload)) as u64,
                    0 => old.min(payload),
                    1 => old.max(payload),
                    2 => old ^ payload,
                    3 => old & payload,
                    4 => old | payload,
                    5 => old.wrapping_add(payload),
                    6 => {
                        if old >= payload {
                            0
                        } else {
                            old + 1
                        }
                    }
                    7 => {
                        if old == 0 || old > payload {
                            payload
                        } else {
                            old - 1
                        }
                    }
                    _ => return Err(Stop::Error(ErrorCode::InvalidEncoding, v)),
                };
                write(env, new & mask)?;
            }
            _ => {
                let cur = read(env)?;
                let ok = match op {
                    0 => cur == payload,
                    2 => cur >= payload,
                    3 => {
                        let d = cur.wrapping_sub(payload) & mask;
                        d & (mask ^ (mask >> 1)) == 0 // top bit clear: cur is "at or after" payload
                    }
                    4 => cur & payload != 0,
                    _ => (cur | payload) & mask != mask,
                };
                if !ok {
                    self.channels[chid].retry = Some(Call::new(subch, mthd::SEM_EXECUTE, v));
                    return Err(Stop::Blocked);
                }
            }
        }
        Ok(())
    }
}
