#include "supervisor.h"

#include <fmt/format.h>

namespace asmsrv {

using namespace linux;

Supervisor::Supervisor(const Spec& spec, Builder& b, Runtime& rt)
    : Gen(spec, b), rt_(rt), n_(spec.workers) {
  worker_ = local("worker_main");
  entry_ = worker_;
  if (n_ > 1) {
    entry_ = local("supervise");
    spawn_ = local("spawn_worker");
    pass_on_ = local("pass_stop_on");
    pids_ = b_.bss("pids", 4 * static_cast<uint64_t>(n_), "the workers' process ids", 4);
    is_supervisor_ = b_.bss("is_supervisor", 4, "1 in the supervisor, 0 in workers", 4);
    wstatus_ = b_.bss("wstatus", 4, "status from wait4", 4);
    supervisor_pid_ = b_.bss("supervisor_pid", 4, "the supervisor's pid, for the workers", 4);
    rt_.set_supervisor_signal(is_supervisor_, pass_on_);
  }
}

void Supervisor::emit(Label driver) {
  if (n_ > 1) {
    emit_supervise(worker_);
    emit_pass_on();
  }
  block(worker_, "a worker starts", n_ > 1 ? &kPrctl : nullptr,
        n_ > 1 ? "prctl(PR_SET_PDEATHSIG, SIGTERM)" : "",
        n_ > 1 ? "Should the supervisor die, the kernel sends this worker SIGTERM." : "");
  if (n_ > 1) {
    set(Reg::rdi, kPrSetPdeathsig, "PR_SET_PDEATHSIG");
    set(Reg::rsi, kSigterm, "SIGTERM");
    sys(kPrctl);
    note("The supervisor may have died before prctl: then no signal will come.");
    sys(kGetppid);
    op(Op::cmp, r32(Reg::rax), var32(supervisor_pid_), "still its child?");
    jmp(Op::jne, rt_.exit_ok(), "orphaned already: exit");
  }
  jmp(Op::jmp, driver);
}

void Supervisor::emit_supervise(Label worker) {
  Label spawn_all = local("spawn_all");
  Label reap = local("reap");
  block(entry_, fmt::format("start {} workers", n_), &kFork,
        fmt::format("for (i = 0; i < {}; i++) spawn_worker(i)", n_),
        "This process only supervises: the workers share the listening socket\n"
        "and each accepts from it. A worker that dies is replaced; SIGTERM and\n"
        "SIGINT are passed on to every worker (see the signal handler).");
  mov(var32(is_supervisor_), imm(1));
  sys(kGetpid);
  mov(var32(supervisor_pid_), r32(Reg::rax), "for the workers' check");
  zero(Reg::rbx, "i = 0");
  label(spawn_all);
  call(spawn_);
  op(Op::inc, r32(Reg::rbx));
  op(Op::cmp, r32(Reg::rbx), dec(n_));
  jmp(Op::jb, spawn_all);
  jmp(Op::jmp, reap);

  Label wait = local("wait");
  Label find = local("find_worker");
  Label found = local("found");
  Label stop = rt_.stop_requested();
  block(reap, "wait for a worker to exit", &kWait4, "pid = wait4(-1, &status, 0, NULL)",
        "Replace it unless we are stopping; exit 0 once every worker is gone.\n"
        "Once stopping, the supervisor closes its copy of the listening socket, so\n"
        "the socket closes (new connects are refused) as soon as the workers close\n"
        "theirs.");
  op(Op::cmp, var32(stop), imm(0), "stopping?");
  jmp(Op::je, wait);
  op(Op::cmp, r32(kListenFd), imm(0), "listener still open? (-1 once closed)");
  jmp(Op::jl, wait);
  mov(r64(Reg::rdi), r64(kListenFd));
  sys(kClose);
  set(kListenFd, -1, "closed");
  label(wait);
  set(Reg::rdi, -1, "any child");
  lea(Reg::rsi, wstatus_);
  zero(Reg::rdx, "options = 0");
  zero(Reg::r10, "rusage = NULL");
  sys(kWait4);
  op(Op::cmp, r64(Reg::rax), imm(-kEintr), "a signal: the handler passed it on");
  jmp(Op::je, reap);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::js, rt_.exit_ok(), "-ECHILD: no worker left");
  lea(Reg::rsi, pids_);
  zero(Reg::r8, "byte offset in pids");
  label(find);
  op(Op::cmp, mem_index(Width::b32, Reg::rsi, Reg::r8), r32(Reg::rax));
  jmp(Op::je, found);
  op(Op::add, r64(Reg::r8), imm(4));
  op(Op::cmp, r64(Reg::r8), dec(4 * n_));
  jmp(Op::jb, find);
  jmp(Op::jmp, reap, "not a worker of ours");
  label(found);
  mov(mem_index(Width::b32, Reg::rsi, Reg::r8), imm(0), "the slot is empty");
  op(Op::cmp, var32(stop), imm(0), "stopping?");
  jmp(Op::jne, reap, "then do not replace it");
  mov(r64(Reg::rbx), r64(Reg::r8));
  op(Op::shr, r64(Reg::rbx), imm(2), "rbx = the slot");
  std::string msg = fmt::format("{}: a worker exited; starting another\n", spec_.name);
  Label restart = b_.bytes("restart_msg", msg, "printed when a worker is replaced");
  set(Reg::rdi, kStderr, "fd = STDERR_FILENO");
  lea(Reg::rsi, restart);
  set(Reg::rdx, static_cast<int64_t>(msg.size()));
  call(rt_.write_all());
  rt_.pause_100ms("pause 100 ms: a crashing worker must not make us spin");
  call(spawn_);
  jmp(Op::jmp, reap);

  Label child = local("child");
  Label retry = local("retry");
  Label forked = local("forked");
  Label done = local("done");
  block(spawn_, "subroutine spawn_worker(rbx = slot)", &kFork, "pids[slot] = fork()",
        "The child becomes a worker. A stop signal that came meanwhile reaches it too.");
  label(retry);
  sys(kFork);
  op(Op::test, r64(Reg::rax), r64(Reg::rax));
  jmp(Op::jns, forked);
  rt_.pause_100ms("fork failed: pause 100 ms, try again");
  op(Op::cmp, var32(stop), imm(0), "unless we are stopping");
  jmp(Op::jne, done);
  jmp(Op::jmp, retry);
  label(forked);
  jmp(Op::jz, child);
  mov(r32(Reg::rcx), r32(Reg::rbx));
  op(Op::shl, r64(Reg::rcx), imm(2));
  lea(Reg::rsi, pids_);
  mov(mem_index(Width::b32, Reg::rsi, Reg::rcx), r32(Reg::rax), "pids[slot] = pid");
  op(Op::cmp, var32(stop), imm(0));
  jmp(Op::je, done);
  mov(r32(Reg::rdi), r32(Reg::rax), "stopping already: pass it on");
  set(Reg::rsi, kSigterm, "SIGTERM");
  sys(kKill);
  label(done);
  ret();
  label(child);
  mov(var32(is_supervisor_), imm(0), "a worker");
  note("setpgid(0, 0): a process group of its own, so a terminal's Ctrl-C reaches only");
  note("the supervisor, which passes it on once (twice would mean: exit at once).");
  zero(Reg::rdi, "pid = 0: this process");
  zero(Reg::rsi, "pgid = 0: its own pid");
  sys(kSetpgid);
  jmp(Op::jmp, worker);
}

void Supervisor::emit_pass_on() {
  Label next = local("next");
  Label loop = local("loop");
  block(pass_on_, "signal handler, in the supervisor: pass the stop on", &kKill,
        "stop_requested = 1; for each worker pid: kill(pid, SIGTERM)",
        "The supervisor stops replacing workers and asks each to stop gracefully.");
  mov(var32(rt_.stop_requested()), imm(1), "stop_requested = 1: no more restarts");
  zero(Reg::r8, "byte offset in pids");
  label(loop);
  lea(Reg::rsi, pids_);
  mov(r32(Reg::rdi), mem_index(Width::b32, Reg::rsi, Reg::r8), "pid");
  op(Op::test, r32(Reg::rdi), r32(Reg::rdi));
  jmp(Op::jz, next, "an empty slot");
  set(Reg::rsi, kSigterm, "SIGTERM");
  sys(kKill);
  label(next);
  op(Op::add, r64(Reg::r8), imm(4));
  op(Op::cmp, r64(Reg::r8), dec(4 * n_));
  jmp(Op::jb, loop);
  ret("returns into signal_restorer");
}

}  // namespace asmsrv
