"""Subprocess for the lock tests: take RUN_DIR's lock, then hold, vanish or race for it.

Usage: python lock_holder.py RUN_DIR hold|exit|race [START_AT]
  hold: open the run as writer, print "locked", sleep until killed.
  exit: open the run as writer, print "locked", exit without releasing (a dead holder).
  race: wait until START_AT (unix time), try RunLock.acquire, print "won" or "lost", and
        hold for 2.5 s so that every racer tries while the winner lives.
"""

from __future__ import annotations

import os
import sys
import time

from archive import LockError, RunStore
from archive.lock import RunLock


def main() -> None:
    run_dir, mode = sys.argv[1], sys.argv[2]
    if mode == "race":
        time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
        try:
            RunLock.acquire(run_dir)
        except LockError:
            print("lost", flush=True)
            return
        print("won", flush=True)
        time.sleep(2.5)
        os._exit(0)
    RunStore.open(run_dir)
    print("locked", os.getpid(), flush=True)
    if mode == "exit":
        os._exit(0)  # no close(): the lock file stays behind, its holder dead
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
