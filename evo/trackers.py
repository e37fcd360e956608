"""Send a run's per-evaluation numbers to the experiment trackers the user turned on.

The ``[log]`` table turns them on: ``tensorboard = true`` (event files in
``RUN_DIR/tensorboard``), ``wandb = "PROJECT"`` (Weights & Biases), ``mlflow = "URI"`` (an
MLflow tracking URI). Each finished evaluation is one point whose step is the number of
evaluation runs so far (the unit of ``run.evaluations``): numbers become scalars named
``evo/<name>`` (``evo/metric``, ``evo/best``, ``evo/coverage``, ``evo/qd_score``,
``evo/elites``, ``evo/cost``), strings (``operator``, ``status``) text where the tracker keeps
text. The resolved config goes along (W&B config, MLflow params when its run is made,
TensorBoard text ``config`` at each start); it holds no secret, only the name of the API key's
variable.

A tracker never stops or slows the search. Each one runs in its own thread, so a slow server
holds only that thread and :meth:`Trackers.log_evaluation` only queues; its package is
imported there, and only when it is turned on; one that is missing, fails to start or raises
later is turned off with one line in :attr:`Trackers.warnings` naming it, the error and what
to do. A resumed run continues the same tracker run: W&B and MLflow run ids are kept in
``RUN_DIR/trackers.json``, and steps up to ``resume_step`` (logged by the earlier process)
are neither logged again nor kept twice.

Example:
    >>> trackers = open_trackers(
    ...     {"tensorboard": False, "wandb": "", "mlflow": ""},
    ...     Path("runs/demo"),
    ...     run_name="demo",
    ...     config={},
    ...     resume_step=0,
    ... )
    >>> trackers.names
    ()
    >>> trackers.log_evaluation(1, {"metric": 1.25, "best": 1.25, "operator": "tpe"})
    >>> trackers.close()
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import queue
import threading
import time
import uuid
from inspect import signature
from pathlib import Path
from typing import Any

from evo.rundir import read_json, write_json

log = logging.getLogger("evo")

IDS_FILE = "trackers.json"
"""File in the run dir holding the W&B and MLflow run ids, so that a resumed run continues."""
PREFIX = "evo/"
"""Namespace of every per-evaluation value in the trackers."""


def open_trackers(
    log_cfg: dict[str, Any],
    run_dir: Path,
    *,
    run_name: str,
    config: dict[str, Any],
    resume_step: int,
) -> Trackers:
    """Start the trackers ``log_cfg`` turns on; returns at once (they start in the background).

    Args:
        log_cfg: the ``[log]`` table: ``tensorboard`` (bool), ``wandb`` (a W&B project, ""
            for off), ``mlflow`` (an MLflow tracking URI, "" for off).
        run_dir: the run dir; TensorBoard writes ``run_dir/tensorboard``, W&B its files under
            ``run_dir/wandb`` (unless ``WANDB_DIR`` is set), and run ids go to
            ``run_dir/trackers.json``.
        run_name: the name the run has in W&B and MLflow.
        config: the resolved config, logged once per tracker run.
        resume_step: evaluation runs the run dir already holds (0 for a fresh run); logging
            goes on after it.

    Returns:
        The :class:`Trackers`. Never raises for a tracker's sake: a missing package or a
        failed start becomes a line in :attr:`Trackers.warnings`.
    """
    ids = _Ids(run_dir / IDS_FILE)
    made: list[_Tracker] = []
    if log_cfg.get("tensorboard"):
        made.append(_TensorBoard(run_dir / "tensorboard", config, resume_step))
    if log_cfg.get("wandb"):
        made.append(_WandB(log_cfg["wandb"], run_dir, run_name, config, ids))
    if log_cfg.get("mlflow"):
        made.append(_MLflow(log_cfg["mlflow"], run_dir, run_name, config, ids))
    return Trackers(made, resume_step=resume_step)


class Trackers:
    """The trackers of one run, each behind its own thread; made by :func:`open_trackers`.

    Attributes:
        warnings: one line per tracker turned off (missing package, failed start, error
            while logging, still busy at close), in order; appended from the trackers'
            threads. :meth:`new_warnings` returns those not yet returned.
    """

    def __init__(self, trackers: list[_Tracker], *, resume_step: int = 0):
        self.warnings: list[str] = []
        self._read = 0
        self._lock = threading.Lock()
        self._resume_step = resume_step
        self._closed = False
        self._channels = [_Channel(t, self._warn) for t in trackers]

    @property
    def names(self) -> tuple[str, ...]:
        """The trackers still on (starting, or started), e.g. ``("tensorboard", "wandb")``."""
        return tuple(c.tracker.name for c in self._channels if c.alive)

    def log_evaluation(self, step: int, values: dict[str, Any]) -> None:
        """Queue one finished evaluation for every tracker still on; never blocks or raises.

        Args:
            step: evaluation runs finished so far (1-based, the unit of ``run.evaluations``).
                Several programs may finish at the same step; a step not after
                ``resume_step`` was logged by the earlier process and is skipped.
            values: numbers (``metric`` in the target's unit, None for a failed program;
                ``best``, ``coverage`` (0..1), ``qd_score``, ``elites``, ``cost`` in dollars
                so far), logged as scalars ``evo/<key>``; strings (``operator``, ``status``)
                logged as text where the tracker keeps text. None and other types are left
                out.
        """
        if self._closed or step <= self._resume_step or not self._channels:
            return
        scalars: dict[str, float] = {}
        texts: dict[str, str] = {}
        for key, value in values.items():
            if isinstance(value, str):
                texts[PREFIX + key] = value
            elif isinstance(value, numbers.Real):
                scalars[PREFIX + key] = float(value)
        for channel in self._channels:
            if channel.alive:
                channel.send(("log", step, scalars, texts))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every evaluation queued so far has reached the trackers still on, and
        TensorBoard's file is written.

        Args:
            timeout: seconds to wait in all.

        Returns:
            False when a tracker was still busy at the timeout (a slow server).
        """
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        done = []
        for channel in self._channels:
            event = threading.Event()
            channel.send(("flush", event))
            done.append(event)
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in done)

    def close(self, *, ok: bool = True, timeout: float = 30.0) -> None:
        """Flush and end every tracker run (W&B finishes it, MLflow marks it FINISHED, or
        FAILED when not ``ok``). Idempotent; later :meth:`log_evaluation` calls do nothing.

        Args:
            ok: the search ended normally (False: it stopped on an error).
            timeout: seconds to wait in all; a tracker still busy then (a slow server) is
                left to finish in the background, with a warning.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for channel in self._channels:
            channel.send(("close", ok))
        for channel in self._channels:
            channel.thread.join(max(0.0, deadline - time.monotonic()))
            if channel.thread.is_alive() and channel.alive:
                channel.alive = False
                self._add_warning(
                    f"{channel.tracker.label}: still busy {timeout:g} s into closing (a slow "
                    "server?); left to finish in the background, the last evaluations may be "
                    "missing there"
                )

    def new_warnings(self) -> list[str]:
        """The warnings added since the last call (for the loop to print as they come)."""
        with self._lock:
            fresh = self.warnings[self._read :]
            self._read = len(self.warnings)
        return fresh

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(ok=exc_type is None)

    def _warn(self, tracker: _Tracker, stage: str, error: BaseException) -> None:
        message = " ".join(str(error).split())[:300] or "(no message)"
        if isinstance(error, ImportError):
            what = f"not installed ({type(error).__name__}: {message}); {tracker.install}"
        else:
            hint = tracker.start_hint if stage == "start" else "the search goes on without it"
            what = f"turned off after an error ({stage}): {type(error).__name__}: {message}; {hint}"
        self._add_warning(f"{tracker.label}: {what}")

    def _add_warning(self, line: str) -> None:
        with self._lock:
            self.warnings.append(line)
        log.warning("%s", line)


class _Channel:
    """One tracker served by its own daemon thread, in the order the calls were made.

    Once the tracker fails, the thread goes on draining its queue (so that flush and close
    never wait on a dead tracker) without calling it again.
    """

    def __init__(self, tracker: _Tracker, warn) -> None:
        self.tracker = tracker
        self.alive = True
        self._warn = warn
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._serve, name=f"evo-tracker-{tracker.name}", daemon=True
        )
        self.thread.start()

    def send(self, item: tuple) -> None:
        self._queue.put(item)

    def _serve(self) -> None:
        self._call("start", self.tracker.start)
        while True:
            item = self._queue.get()
            if item[0] == "log":
                self._call(f"evaluation {item[1]}", self.tracker.log, *item[1:])
            elif item[0] == "flush":
                self._call("flush", self.tracker.flush)
                item[1].set()
            else:
                self._call("close", self.tracker.close, item[1])
                return

    def _call(self, stage: str, fn, *args: Any) -> None:
        if not self.alive:
            return
        try:
            fn(*args)
        except BaseException as error:  # noqa: B036 - a tracker may raise anything
            self.alive = False
            self._warn(self.tracker, stage, error)
            try:
                self.tracker.abort()
            except BaseException:  # noqa: B036 - it is off already
                pass


class _Tracker:
    """What a tracker does, called from its channel's thread only."""

    name = ""  # the [log] key
    label = ""  # the name users know
    install = ""  # what to do when its package is missing
    start_hint = ""  # what to check when it fails to start

    def start(self) -> None:
        """Import the package, open (or resume) the tracker's run."""

    def log(self, step: int, scalars: dict[str, float], texts: dict[str, str]) -> None:
        """Log one evaluation."""

    def flush(self) -> None:
        """Write what is buffered."""

    def close(self, ok: bool) -> None:
        """Flush and end the run."""

    def abort(self) -> None:
        """Release what it holds after a failure (errors here are ignored)."""


class _TensorBoard(_Tracker):
    """``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package).

    A resume writes a new event file in the same folder with ``purge_step = resume_step + 1``:
    TensorBoard hides whatever an earlier process wrote past the steps the run dir kept, so
    no step is shown twice.
    """

    name, label = "tensorboard", "TensorBoard"
    install = "pip install tensorboard (or set log.tensorboard = false)"
    start_hint = "check that RUN_DIR/tensorboard can be a writable folder"

    def __init__(self, log_dir: Path, config: dict, resume_step: int) -> None:
        self.log_dir, self.config, self.resume_step = log_dir, config, resume_step
        self.writer = None

    def start(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(self.log_dir),
            purge_step=self.resume_step + 1 if self.resume_step else None,
            flush_secs=30,
        )
        lines = "\n".join(f"    {k} = {v}" for k, v in flat_config(self.config).items())
        self.writer.add_text("config", lines or "    (empty)", self.resume_step)

    def log(self, step: int, scalars: dict[str, float], texts: dict[str, str]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        if texts:
            text = ", ".join(f"{k.removeprefix(PREFIX)}: {v}" for k, v in texts.items())
            self.writer.add_text(PREFIX + "outcome", text, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, ok: bool) -> None:
        self.writer.close()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _WandB(_Tracker):
    """A Weights & Biases run in ``project``, resumed by the id kept in ``trackers.json``.

    Values are logged against the custom x-axis ``evo/evaluation`` (W&B's own ``_step`` only
    counts calls), so several programs may share a step and an offline resume, whose
    ``_step`` restarts at 0, still lines up. ``WANDB_MODE=offline`` logs to local files
    (``wandb sync`` uploads them later).
    """

    name, label = "wandb", "W&B"
    install = 'pip install wandb (or set log.wandb = "")'
    start_hint = "check `wandb login` and the project name, or set WANDB_MODE=offline"

    def __init__(self, project: str, run_dir: Path, run_name: str, config: dict, ids) -> None:
        self.project, self.run_dir, self.run_name = project, run_dir, run_name
        self.config, self.ids = config, ids
        self.run = None

    def start(self) -> None:
        import wandb

        # Never the interactive login prompt: it would fight the progress line for the tty
        # (a wandb.login without `prompt`, in older wandb, may still ask).
        online = wandb.setup().settings.mode in ("online", "run", "shared")
        if online and wandb.run is None and "prompt" in signature(wandb.login).parameters:
            if not wandb.login(prompt=False, verify=False):
                raise RuntimeError("no W&B credentials found")
        saved = self.ids.get(self.name)
        run_id = saved.get("id") if saved.get("project") == self.project else None
        if not run_id:
            run_id = uuid.uuid4().hex[:12]
            self.ids.put(self.name, {"project": self.project, "id": run_id})
        kwargs: dict[str, Any] = {}
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(self.run_dir)
        self.run = wandb.init(
            project=self.project,
            id=run_id,
            name=self.run_name,
            resume="allow",
            config=self.config,
            settings=wandb.Settings(console="off", reinit="create_new"),
            **kwargs,
        )
        self.run.define_metric(PREFIX + "evaluation")
        self.run.define_metric(PREFIX + "*", step_metric=PREFIX + "evaluation")

    def log(self, step: int, scalars: dict[str, float], texts: dict[str, str]) -> None:
        self.run.log({PREFIX + "evaluation": step, **scalars, **texts})

    def close(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)

    def abort(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)


class _MLflow(_Tracker):
    """An MLflow run at tracking URI ``uri``, in the experiment ``MLFLOW_EXPERIMENT_NAME``
    (default ``evo``), resumed by the run id kept in ``trackers.json``.

    Uses an ``MlflowClient`` of its own, never MLflow's global active run, so a notebook's
    own MLflow run is left alone. A ``file:`` URI (or a plain path) is a local file store;
    MLflow 3 refuses those unless ``MLFLOW_ALLOW_FILE_STORE=true``, which is set for it
    (the user asked for a file store by name). Strings are not logged: MLflow has no text per
    step.
    """

    name, label = "mlflow", "MLflow"
    install = 'pip install mlflow (or set log.mlflow = "")'
    start_hint = "check the tracking URI (log.mlflow) and that its server answers"

    def __init__(self, uri: str, run_dir: Path, run_name: str, config: dict, ids) -> None:
        self.uri, self.run_dir, self.run_name = uri, run_dir, run_name
        self.config, self.ids = config, ids
        self.client = self.run_id = None

    def start(self) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.uri.startswith("file:") or ":" not in self.uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = MlflowClient(tracking_uri=self.uri)
        saved = self.ids.get(self.name)
        if saved.get("uri") == self.uri and saved.get("run_id"):
            client.update_run(saved["run_id"], status="RUNNING")
            self.client, self.run_id = client, saved["run_id"]
            return
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "evo"
        found = client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(
            exp_id, run_name=self.run_name, tags={"evo.run_dir": str(self.run_dir.resolve())}
        )
        self.client, self.run_id = client, run.info.run_id
        self.ids.put(self.name, {"uri": self.uri, "run_id": self.run_id})
        params = [Param(k, v[:6000]) for k, v in flat_config(self.config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(self.run_id, params=params[i : i + 100])

    def log(self, step: int, scalars: dict[str, float], texts: dict[str, str]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, ok: bool) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if ok else "FAILED")

    def abort(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FAILED")


class _Ids:
    """``RUN_DIR/trackers.json``: ``{"wandb": {"project", "id"}, "mlflow": {"uri",
    "run_id"}}``, written atomically; shared by the trackers' threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, name: str) -> dict[str, str]:
        with self._lock:
            entry = read_json(self.path).get(name)
        return entry if isinstance(entry, dict) else {}

    def put(self, name: str, entry: dict[str, str]) -> None:
        with self._lock:
            data = read_json(self.path)
            data[name] = entry
            write_json(self.path, data)


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"run": {"seed": 0}}`` -> ``{"run.seed": "0"}``: strings as they are, other values as
    JSON; empty tables are left out.

    Example:
        >>> flat_config({"run": {"target": "tinygpt", "hours": 0.0}, "llm": {}})
        {'run.target': 'tinygpt', 'run.hours': '0.0'}
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[f"{prefix}{key}"] = text
    return out
