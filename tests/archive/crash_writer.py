"""Subprocess for the crash test: a fork server whose children write to a run until killed.

Importing pyribs takes seconds, so this process imports everything once and forks one
writer per trial. Protocol, one line each:
  stdin  ``TRIAL SEED RUN_DIR`` fork a writer for that run
  stdout ``pid PID``           the writer's pid, to kill
  stdout ``J ID FIDELITY STATUS FITNESS``  a record add() returned for (it is journaled)
  stdout ``c`` / ``C``         a checkpoint starts / returned
  stdout ``done TRIAL STATUS`` the writer has been reaped (its pid is free again)
"""

from __future__ import annotations

import os
import random
import sys
import traceback

import ribs.archives  # noqa: F401  (imported before forking, so children start at once)
from archive_testkit import make_program

from archive import Program, RunStore


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())  # unbuffered: a kill must not lose printed lines


def writer(run_dir: str, trial: int, seed: int) -> None:
    rng = random.Random(seed)
    store = RunStore.open(run_dir)
    done: list[Program] = []
    for i in range(100_000):
        if i % 25 == 24:
            say("c")
            store.checkpoint()
            say("C")
            continue
        p = make_program(
            trial * 100_000 + i, rng=rng, small=True, fidelity=rng.choice(["tiny", "small"])
        )
        if rng.random() < 0.3:
            pending = Program.from_dict({**p.to_dict(), "status": "pending", "fitness": None})
            store.add(pending)
            say(f"J {p.id} {p.fidelity} pending None")
        if rng.random() < 0.1 and done:  # re-measure: maybe an elite turns out worse
            old = rng.choice(done)
            p = Program.from_dict({**old.to_dict(), "fitness": old.fitness + rng.random()})
        store.add(p)
        say(f"J {p.id} {p.fidelity} {p.status} {p.fitness!r}")
        if p.ok:
            done.append(p)


def main() -> None:
    for line in sys.stdin:
        trial, seed, run_dir = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                writer(run_dir, int(trial), int(seed))
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"done {trial} {status}")


if __name__ == "__main__":
    main()
