"""A read that waits, through /proc: /proc/kmsg with no message to give.

Printed for comparison with the kernel's own procfs (tests/view_run.rs):
  - another file reads while a reader waits on /proc/kmsg (the view must not hold its
    serving thread for the wait);
  - a non-blocking read gets EAGAIN, as procfs's kmsg gives it;
  - a SIGTERM ends the waiting reader (procfs's wait is interruptible).

It drains the messages already queued first (non-blocking reads until EAGAIN): reads
of /proc/kmsg take messages from the kernel's syslog queue.
"""

import errno
import os
import signal
import subprocess
import time


def nonblocking_read():
    fd = os.open("/proc/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.read(fd, 4096)
        return "data"
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        os.close(fd)


def main():
    for _ in range(10000):
        if nonblocking_read() != "data":
            break
    waiter = subprocess.Popen(["cat", "/proc/kmsg"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    with open("/proc/uptime") as f:
        print("uptime while kmsg waits:", len(f.read().split()))
    print("non-blocking kmsg read:", nonblocking_read())
    print("waiter still waiting:", waiter.poll() is None)
    waiter.send_signal(signal.SIGTERM)
    try:
        print("waiter after SIGTERM:", waiter.wait(timeout=30))
    except subprocess.TimeoutExpired:
        print("waiter after SIGTERM: still waiting after 30 s")
        waiter.kill()
        waiter.wait()


if __name__ == "__main__":
    main()
