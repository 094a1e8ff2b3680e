#!/usr/bin/env python3
"""POSIX timers that name a thread which has ended.

A timer made with `SIGEV_THREAD_ID` holds its target thread's `struct pid`, and the
process's timers live until the process ends, so `/proc/<pid>/timers` goes on naming
a target thread after that thread has exited ("notify: signal/tid.N").

Run as the init of a pid namespace and of a VPS: the outputs must be identical. Two
threads each make a timer aimed at themselves (never armed) and end: one at once
(before a view can have seen it start), one after half a second; then the process's
timers are printed, by itself and by a child.
"""
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
SIGEV_THREAD_ID = 4
CLOCK_MONOTONIC = 1


class Sigevent(ctypes.Structure):
    # x86-64 and the other 64-bit ABIs: the value, the signal, how to notify, then a
    # 48-byte union whose first int is the target thread.
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int),
                ("notify", ctypes.c_int), ("tid", ctypes.c_int),
                ("pad", ctypes.c_int * 11)]


def aim_at_myself(linger):
    ev = Sigevent(None, signal.SIGUSR1, SIGEV_THREAD_ID, threading.get_native_id())
    timer = ctypes.c_void_p()
    if libc.timer_create(CLOCK_MONOTONIC, ctypes.byref(ev), ctypes.byref(timer)) != 0:
        raise OSError(ctypes.get_errno(), "timer_create")
    time.sleep(linger)


def main():
    if os.readlink("/proc/self") != "1":
        print("must run as pid 1 of a namespace or VPS", file=sys.stderr)
        return 2
    for linger in (0, 0.5):
        t = threading.Thread(target=aim_at_myself, args=(linger,))
        t.start()
        t.join()
    time.sleep(1)  # a view releases an ended thread within a few hundred ms
    with open("/proc/self/timers") as f:
        sys.stdout.write(f.read())
    sys.stdout.flush()
    child = subprocess.run(["cat", "/proc/1/timers"], capture_output=True, text=True)
    print("read by a child:", child.stdout == open("/proc/self/timers").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
