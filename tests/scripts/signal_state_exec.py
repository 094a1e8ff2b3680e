#!/usr/bin/env python3
"""Execs a command with a chosen signal state: `fresh` (every signal at its default
disposition, an empty mask: what a process started by the kernel has) or `dirty`
(SIGPIPE, SIGHUP and SIGRTMIN+5 ignored, SIGUSR2 and SIGRTMIN+6 blocked, as a careless
caller may leave them).

    signal_state_exec.py fresh|dirty CMD [ARGS...]

glibc refuses to touch signals 32 and 33 (it reserves them) and its posix_spawn starts
children with them ignored, so `fresh` resets every signal with the rt_sigaction system
call itself.
"""
import ctypes
import os
import platform
import signal
import sys

# rt_sigaction's number, by architecture.
SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}


def fresh():
    nr = SYS_RT_SIGACTION[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    dfl = (ctypes.c_uint64 * 8)()  # all zero: SIG_DFL, no flags, empty mask
    for sig in range(1, 65):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if libc.syscall(nr, sig, dfl, None, 8) != 0:
            raise OSError(ctypes.get_errno(), f"rt_sigaction({sig})")
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def dirty():
    for sig in (signal.SIGPIPE, signal.SIGHUP, signal.SIGRTMIN + 5):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2, signal.SIGRTMIN + 6])


def main():
    {"fresh": fresh, "dirty": dirty}[sys.argv[1]]()
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
