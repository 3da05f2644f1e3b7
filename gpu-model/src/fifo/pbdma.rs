//! PBDMA: the GPFIFO and pushbuffer fetch of a channel (`dev_pbdma.ref`,
//! `dev_ram.ref` method headers), read through the channel's address space;
//! a fault while fetching is a PBDMA fault.

use super::*;

impl Fifo {
    /// Reads a dword at a channel virtual address (a PBDMA access).
    pub(super) fn read_va(
        env: &mut Env<'_>,
        pdb: Option<Pdb>,
        va: u64,
    ) -> Result<u32, (u64, WalkError)> {
        let pdb = pdb.ok_or((va, WalkError::Fault(FaultType::UnboundInstBlock)))?;
        let t = env.tlb.translate(env.mem, pdb, va).map_err(|e| (va, e))?;
        t.check(Access::Read, true)
            .map_err(|f| (va, WalkError::Fault(f)))?;
        match t.resolve(va) {
            Some(pa) => env.mem.read_u32(pa).map_err(|m| (va, WalkError::Mem(m))),
            None => Ok(0),
        }
    }

    pub(super) fn pbdma_error(
        &mut self,
        chid: usize,
        env: &mut Env<'_>,
        e: (u64, WalkError),
    ) -> Stop {
        match e.1 {
            WalkError::Fault(t) => self.fault(
                chid,
                env,
                FaultInfo::new(e.0, Access::Read, t),
                Source::Host,
            ),
            WalkError::Mem(_) => Stop::Error(ErrorCode::BadPhysicalAccess, e.0 as u32),
            WalkError::Encoding(_) => Stop::Error(ErrorCode::InvalidEncoding, e.0 as u32),
        }
    }

    pub(super) fn run_inner(
        &mut self,
        chid: usize,
        pdb: Option<Pdb>,
        env: &mut Env<'_>,
        budget: u64,
        ev: &mut Events,
    ) -> Stop {
        let inst = match self.inst(chid) {
            Some(i) => i,
            None => return Stop::Error(ErrorCode::InvalidInstance, 0),
        };
        let Some(userd) = self.channels[chid].userd else {
            return Stop::Error(ErrorCode::InvalidInstance, 1);
        };
        while ev.methods < budget {
            // A method that faulted or blocked runs again first.
            if let Some(call) = self.channels[chid].retry.take() {
                if let Err(stop) = self.exec(chid, pdb, env, ev, call) {
                    return stop;
                }
                ev.methods += 1;
                continue;
            }
            // Data of the current method header.
            if let (Some(h), Some((va, left))) = (self.channels[chid].hdr, self.channels[chid].seg)
            {
                if h.left > 0 && left > 0 {
                    let data = match Self::read_va(env, pdb, va) {
                        Ok(d) => d,
                        Err(e) => return self.pbdma_error(chid, env, e),
                    };
                    let c = &mut self.channels[chid];
                    c.seg = Some((va + 4, left - 1));
                    let addr = h.addr;
                    let mut next = h;
                    next.left -= 1;
                    match h.kind {
                        HeaderKind::Inc => next.addr += 1,
                        HeaderKind::OneInc if h.first => next.addr += 1,
                        _ => {}
                    }
                    next.first = false;
                    c.hdr = (next.left > 0).then_some(next);
                    if let Err(stop) =
                        self.exec(chid, pdb, env, ev, Call::new(h.subch, addr * 4, data))
                    {
                        return stop;
                    }
                    ev.methods += 1;
                    continue;
                }
                if h.left > 0 {
                    return Stop::Error(ErrorCode::InvalidPushbuffer, 1); // method data past the segment
                }
            }
            // The next header of the segment.
            if let Some((va, left)) = self.channels[chid].seg {
                if left == 0 {
                    self.channels[chid].seg = None;
                    continue;
                }
                let w = match Self::read_va(env, pdb, va) {
                    Ok(d) => d,
                    Err(e) => return self.pbdma_error(chid, env, e),
                };
                let c = &mut self.channels[chid];
                c.seg = Some((va + 4, left - 1));
                let count = (w >> 16) & 0x1fff;
                let subch = ((w >> 13) & 7) as u8;
                let addr = w & 0xfff;
                let kind = match w >> 29 {
                    1 => HeaderKind::Inc,
                    3 => HeaderKind::NonInc,
                    5 => HeaderKind::OneInc,
                    4 => {
                        // Immediate data: the method's data is in 28:16.
                        if let Err(stop) =
                            self.exec(chid, pdb, env, ev, Call::new(subch, addr * 4, count))
                        {
                            return stop;
                        }
                        ev.methods += 1;
                        continue;
                    }
                    7 => {
                        c.seg = None;
                        continue;
                    }
                    0 if count == 0 && w & 0x3_0000 == 0 => continue, // NOP
                    _ => return Stop::Error(ErrorCode::InvalidPushbuffer, w),
                };
                if count > 0 {
                    c.hdr = Some(Header {
                        kind,
                        subch,
                        addr,
                        left: count,
                        first: true,
                    });
                }
                continue;
            }
            // The next GPFIFO entry.
            let gp_put = env.mem.read_u32(userd.offset(0x8c));
            let base_lo = env.mem.read_u32(inst.offset(0x48));
            let base_hi = env.mem.read_u32(inst.offset(0x4c));
            let (Ok(gp_put), Ok(base_lo), Ok(base_hi)) = (gp_put, base_lo, base_hi) else {
                return Stop::Error(ErrorCode::BadPhysicalAccess, 2);
            };
            let entries = 1u32 << ((base_hi >> 16) & 0x1f);
            let gp_base = (u64::from(base_hi & 0xff) << 32) | u64::from(base_lo & !7);
            let c = &self.channels[chid];
            if gp_put >= entries {
                return Stop::Error(ErrorCode::InvalidPushbuffer, gp_put);
            }
            if c.gp_get == gp_put {
                return Stop::Idle;
            }
            let at = gp_base + u64::from(c.gp_get) * 8;
            let (e0, e1) = match (Self::read_va(env, pdb, at), Self::read_va(env, pdb, at + 4)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return self.pbdma_error(chid, env, e),
            };
            let c = &mut self.channels[chid];
            c.gp_get = (c.gp_get + 1) % entries;
            if env.mem.write_u32(userd.offset(0x88), c.gp_get).is_err() {
                return Stop::Error(ErrorCode::BadPhysicalAccess, 3);
            }
            let len = (e1 >> 10) & 0x1f_ffff;
            if len == 0 {
                if e1 & 0xff != 0 {
                    return Stop::Error(ErrorCode::InvalidPushbuffer, e1); // only NOP control entries
                }
                continue;
            }
            if e0 & 1 != 0 {
                return Stop::Error(ErrorCode::InvalidPushbuffer, e0); // conditional fetch
            }
            let va = (u64::from(e1 & 0xff) << 32) | u64::from(e0 & !3);
            c.seg = Some((va, len));
        }
        Stop::Idle
    }
}
