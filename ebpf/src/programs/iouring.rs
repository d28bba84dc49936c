//! io_uring requests that do what a watched syscall does, without the syscall: each completed
//! request is judged by the same function as its syscall twin.
//!
//! Judged at completion (`io_uring_complete`), not at submission (`io_uring_submit_req`): at
//! submission the request has no struct file yet (io_uring assigns it when the request is
//! issued, possibly later in a worker, after a linked request made it), only a descriptor
//! number or a fixed-file index; at completion `req->file` is the file that was written
//! (a direct descriptor's too, which no fd table holds) and `res` says how much was written.
//! For the writes this is the syscall exit's judgement. For splice and tee, which mark a pipe
//! for the writes after them, the mark is set once the splice has completed, before any later
//! request could be issued against it: a linked request starts only after its predecessor
//! completed, and a program that waits for the splice's completion has seen it posted.
//! Completions run in the submitting task or in its io_uring worker thread (`iou-wrk-PID`),
//! which shares its files, memory and tgid: the record names the submitting process.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use escapewatch_common::{
    abi::{
        IORING_OP_CONNECT, IORING_OP_MADVISE, IORING_OP_SPLICE, IORING_OP_TEE, IORING_OP_WRITE,
        IORING_OP_WRITE_FIXED, IORING_OP_WRITEV, IORING_OP_WRITEV_FIXED, SPLICE_F_FD_IN_FIXED,
    },
    config::OFFSET_NONE,
    event::{ConnectEvent, FD_NONE},
    kind::EventKind,
    programs::ProgramId,
};

use super::{
    SysArgs,
    memory::{
        COUNT_VECTORED, emit_write, judge_splice, madvise_file, madvise_special, marks_present,
        write_target,
    },
    socket::{fill_peer_of, is_unix_socket},
};
use crate::{
    cfg,
    helpers::{
        emit::{emit, run},
        files::fd_file,
        opaque::opaque,
        task::{CURRENT, ERR_READ, KPtr, current, is_candidate, read_or_zero, read_ptr},
    },
    maps::{EVENTS_CRITICAL, IOURING_TAILS},
};

/// A request whose result was just posted.
pub(crate) struct Completion {
    pub req: KPtr,
    pub opcode: u8,
    pub res: i32,
}

/// The request of an `io_uring_complete` record, when the offsets are known. Whether the
/// submitter is a container candidate is each judgement's own question, as for the syscall
/// twins (a write is judged by the mark of what it reaches, whoever writes). The record is `TP_PROTO(struct io_ring_ctx *ctx, void *req,
/// struct io_uring_cqe *cqe)` on 6.x (5.x passed user_data, res, cflags instead of the cqe);
/// `req` is a `struct io_kiocb *` and its fields come from tracefs format (5.5+ has `req`).
#[inline(always)]
pub(crate) fn completion(ctx: &TracePointContext) -> Result<Option<Completion>, i64> {
    let (req_off, res_off) = (cfg!(iou_complete_req), cfg!(iou_complete_res));
    if req_off == OFFSET_NONE || res_off == OFFSET_NONE {
        return Ok(None);
    }
    // SAFETY: offsets inside this tracepoint's record, from its tracefs format.
    let req: KPtr = unsafe { ctx.read_at(req_off as usize) }.map_err(|_| ERR_READ)?;
    // SAFETY: as above.
    let res: i32 = unsafe { ctx.read_at(res_off as usize) }.map_err(|_| ERR_READ)?;
    // 0 (IORING_OP_NOP) when unreadable: judged by nobody.
    let opcode: u8 = read_or_zero(req, cfg!(iokiocb_opcode));
    Ok(Some(Completion { req, opcode, res }))
}

/// `io_uring_complete`: every posted completion. The request's opcode picks its judgement,
/// entered by tail call (entry `opcode` of IOURING_TAILS, which the agent fills with the
/// programs below and [`super::open::iouring_complete_open`]); a request nobody judges (a
/// read, a NOP, a socket send) returns after the opcode read. One program here instead of one
/// per judgement: each program on a classic tracepoint pays the perf path again.
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete(ctx: TracePointContext) -> u32 {
    if let Ok(Some(c)) = completion(&ctx) {
        // SAFETY: the same context, handed to a program of the same type; returns only if
        // the entry is empty.
        unsafe { IOURING_TAILS.tail_call(&ctx, u32::from(c.opcode)) };
    }
    0
}

/// `io_uring_complete` for the write family and for splice and tee (5.1+; splice 5.7, tee
/// 5.8): IORING_OP_WRITE, WRITE_FIXED (write/pwrite64 from a registered buffer), WRITEV and
/// WRITEV_FIXED (6.15+) are judged as the write syscalls are ([`write_target`], then
/// [`emit_write`] with the request's result); IORING_OP_SPLICE and TEE mark pipes as splice(2)
/// and tee(2) do ([`judge_splice`], which between two pipes is what tee(2)'s entry does).
/// Every other completion returns after the opcode test.
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete_write(ctx: TracePointContext) -> u32 {
    run(ProgramId::IouringCompleteWrite, || {
        let Some(c) = completion(&ctx)? else {
            return Ok(());
        };
        let count = match c.opcode {
            IORING_OP_WRITE | IORING_OP_WRITE_FIXED => {
                u64::from(read_or_zero::<u32>(c.req, cfg!(iorw_len)))
            }
            IORING_OP_WRITEV | IORING_OP_WRITEV_FIXED => COUNT_VECTORED,
            IORING_OP_SPLICE | IORING_OP_TEE => return judge_pipe_feed(&c),
            _ => return Ok(()),
        };
        // One judgement for every write opcode: the count's origin would otherwise verify it
        // once per kind of count.
        judge_write(&c, opaque(count))
    })
}

/// A completed write request of `count` bytes (or [`COUNT_VECTORED`]) through `req->file`.
#[inline(always)]
fn judge_write(c: &Completion, count: u64) -> Result<(), i64> {
    if !marks_present() {
        return Ok(());
    }
    let file = read_ptr(c.req, cfg!(iokiocb_file))?;
    // The request's position advanced by what was written (a write at the file position too:
    // io_uring reads f_pos into ki_pos when it issues the request).
    let end: u64 = read_or_zero(c.req, cfg!(iorw_pos));
    let start = end.wrapping_sub(u64::from(c.res.max(0).unsigned_abs()));
    let Some((kind, args)) = write_target(file, u64::from(FD_NONE), count, Some(start))? else {
        return Ok(());
    };
    emit_write(
        ProgramId::IouringCompleteWrite,
        kind as u32,
        i64::from(c.res),
        args,
    );
    Ok(())
}

/// A completed splice or tee from `splice_fd_in` into `req->file` (the output). Nothing moved
/// when it failed or moved nothing. A registered input file (SPLICE_F_FD_IN_FIXED) lives in
/// the ring's file table, which is not read: not judged.
#[inline(always)]
fn judge_pipe_feed(c: &Completion) -> Result<(), i64> {
    if c.res <= 0 || !is_candidate() {
        return Ok(());
    }
    let flags: u32 = read_or_zero(c.req, cfg!(iosplice_flags));
    if flags & SPLICE_F_FD_IN_FIXED != 0 {
        return Ok(());
    }
    let Ok(fd_in) = u64::try_from(read_or_zero::<i32>(c.req, cfg!(iosplice_fd_in))) else {
        return Ok(());
    };
    let source = fd_file(current(), fd_in)?;
    let pipe = read_ptr(c.req, cfg!(iokiocb_file))?;
    // A tee that moved something had a pipe on both sides, where judge_splice is tee's check
    // (pass_mark_on): one copy of it verified, not two.
    judge_splice(source, pipe)
}

/// `io_uring_complete` for IORING_OP_MADVISE (5.6+): the discard is judged as madvise(2)'s
/// two programs judge it ([`madvise_file`], [`madvise_special`]); it ran in the
/// submitter's memory (the worker shares it), where the mapping still is.
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete_madvise(ctx: TracePointContext) -> u32 {
    run(ProgramId::IouringCompleteMadvise, || {
        let Some(c) = completion(&ctx)? else {
            return Ok(());
        };
        if c.opcode != IORING_OP_MADVISE {
            return Ok(());
        }
        // madvise(start, len, advice), as the syscall's arguments. `len` is a u32 on older
        // kernels (6.1), a u64 on newer (6.18): on little-endian the low half is at the
        // member's offset either way.
        let args = MadviseArgs([
            read_or_zero(c.req, cfg!(iomadvise_addr)),
            u64::from(read_or_zero::<u32>(c.req, cfg!(iomadvise_len))),
            u64::from(read_or_zero::<u32>(c.req, cfg!(iomadvise_advice))),
        ]);
        madvise_file(ProgramId::IouringCompleteMadvise, &args)?;
        madvise_special(ProgramId::IouringCompleteMadvise, &args)
    })
}

/// The arguments of an IORING_OP_MADVISE request, read as madvise(2)'s.
struct MadviseArgs([u64; 3]);

impl SysArgs for MadviseArgs {
    #[inline(always)]
    fn arg(&self, n: usize) -> Result<u64, i64> {
        self.0.get(n).copied().ok_or(ERR_READ)
    }
}

/// `io_uring_complete` for IORING_OP_CONNECT (5.5+): a Unix connect that succeeded is judged as
/// connect(2)'s exit judges it, by the socket it reached ([`fill_peer_of`]): the sockaddr the
/// request passed is not read (the kernel took its own copy at submission), the connected peer
/// is what counts. There is no path the caller passed, and no descriptor for a fixed file.
#[tracepoint(category = "io_uring", name = "io_uring_complete")]
pub fn iouring_complete_connect(ctx: TracePointContext) -> u32 {
    run(ProgramId::IouringCompleteConnect, || {
        let Some(c) = completion(&ctx)? else {
            return Ok(());
        };
        if c.opcode != IORING_OP_CONNECT || c.res != 0 || !is_candidate() {
            return Ok(());
        }
        let file: KPtr = read_or_zero(c.req, cfg!(iokiocb_file));
        if file.is_null() || !is_unix_socket(file) {
            return Ok(());
        }
        emit::<ConnectEvent>(
            &EVENTS_CRITICAL,
            ProgramId::IouringCompleteConnect,
            EventKind::UnixConnect,
            CURRENT,
            |ev| {
                ev.ret = 0;
                ev.fd = FD_NONE;
                ev._pad = 0;
                ev.path[0] = 0;
                ev.peer_ino = 0;
                ev.peer_dev = 0;
                ev.peer_name[0] = 0;
                fill_peer_of(file, ev);
            },
        );
        Ok(())
    })
}
