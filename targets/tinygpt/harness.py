"""Trusted harness for the tinygpt target: data, budget, evaluation and the result file.

``train.py`` (the evolving file) builds and trains a model; everything that decides its score
lives here, in a file the search never edits:

- data: byte-level tokens (vocabulary 256) from the Python standard library's own ``*.py``
  files, or from the text files named in ``TINYGPT_DATA``; a deterministic split by file;
- budget: a fixed number of training tokens (deterministic) or fixed training seconds
  (the first ``TINYGPT_WARMUP_STEPS`` steps, where compilation happens, are not timed);
- metric: ``val_bpb`` computed here from the model's logits on a fixed validation slice;
- guards: fast fail on NaN or divergence (``{"status": "nan"}``) and a causality check
  (``{"status": "invalid_result"}`` for a model whose logits at t depend on tokens after t).

It runs without evo installed. The environment it reads is documented in targets/README.md.

evo runs ``python harness.py train.py``: this file is then the entry point, takes evo's result
channel (``EVO_RESULT_FD``/``EVO_TOKEN_FD``) out of the environment before ``train.py`` runs,
runs ``train.py`` as ``__main__`` (its ``import harness`` gets this module), writes the one
result after ``train.py`` returns and exits at once. ``python train.py`` by hand still works:
the result then goes to ``$EVO_RESULT`` (or nowhere when unset).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

VOCAB_SIZE = 256
"""Tokens are bytes."""

DIVERGED_LOSS = 100.0
"""A training loss above this (nats; uniform is ln 256 = 5.55) counts as divergence."""

CAUSALITY_ATOL = 1e-4
"""Largest change allowed in a logit at <= t when tokens after t change (float32, no autocast)."""

_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


class HarnessError(RuntimeError):
    """The harness was configured wrongly (an environment variable or a data file)."""


def _env_int(name: str, default: int, low: int = 1) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise HarnessError(f"env {name}={raw!r} is not an integer; set a whole number") from None
    if value < low:
        raise HarnessError(f"env {name}={value} must be >= {low}")
    return value


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "")
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise HarnessError(f"env {name}={raw!r} is not a number") from None
    if not value > 0:
        raise HarnessError(f"env {name}={value} must be > 0")
    return value


# ---------------------------------------------------------------------------------------------
# data


def _corpus_files() -> list[Path]:
    """Files of the corpus in a fixed order: ``TINYGPT_DATA`` or the stdlib's ``*.py``."""
    named = os.environ.get("TINYGPT_DATA", "")
    if named:
        files = [Path(p) for p in named.split(os.pathsep) if p]
        for f in files:
            if not f.is_file():
                raise HarnessError(f"TINYGPT_DATA names {str(f)!r}, which is not a file; "
                                   "list readable text files separated by os.pathsep")
        return files
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted((p for p in root.rglob("*.py")
                   if not _SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])),
                  key=lambda p: p.relative_to(root).as_posix())


def load_corpus(max_bytes: int) -> tuple[bytes, bytes, str]:
    """Read the corpus and split it by file into train and validation bytes.

    Every tenth file (in the fixed order) is validation; files are read until the train part
    holds ``max_bytes`` and the validation part a tenth of that. With a single named file the
    last tenth of its bytes is validation.

    Returns:
        ``(train, val, sha256)``; the hash covers exactly the bytes used, split marker included.
    """
    files = _corpus_files()
    val_cap = max(max_bytes // 10, 4096)
    if len(files) == 1:
        data = files[0].read_bytes()[: max_bytes + val_cap]
        cut = len(data) - max(len(data) // 10, 1)
        train, val = data[:cut], data[cut:]
    else:
        train_parts: list[bytes] = []
        val_parts: list[bytes] = []
        n_train = n_val = 0
        for i, f in enumerate(files):
            to_val = i % 10 == 5
            if (n_val >= val_cap) if to_val else (n_train >= max_bytes):
                if n_train >= max_bytes and n_val >= val_cap:
                    break
                continue
            text = f.read_bytes()
            if to_val:
                val_parts.append(text)
                n_val += len(text)
            else:
                train_parts.append(text)
                n_train += len(text)
        train, val = b"".join(train_parts)[:max_bytes], b"".join(val_parts)[:val_cap]
    if len(train) < 4096 or len(val) < 1024:
        raise HarnessError(f"corpus too small ({len(train)} train / {len(val)} val bytes); "
                           "name more text in TINYGPT_DATA")
    sha = hashlib.sha256(train + b"\0--val--\0" + val).hexdigest()
    return train, val, sha


def _select_device() -> torch.device:
    wanted = os.environ.get("EVO_DEVICE", "").strip().lower()
    if wanted not in ("", "cpu", "cuda"):
        raise HarnessError(f"env EVO_DEVICE={wanted!r} must be 'cpu' or 'cuda'")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise HarnessError("env EVO_DEVICE=cuda but torch sees no CUDA device")
    if wanted != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# the run


class Run:
    """One training run under the harness; made by :func:`setup`.

    Attributes:
        device: where the model and batches live.
        cuda: True on a GPU (bf16 autocast; the script may compile and use fused AdamW).
        scale: integer multiplier the fidelity applies to the script's size constants.
        seed: the run's random seed (``EVO_SEED``).
        eval_seq_len: context length of the validation sequences (fixed per fidelity).
        vocab_size: 256 (bytes).
    """

    def __init__(self) -> None:
        self.seed = _env_int("EVO_SEED", 0, low=0)
        self.fidelity = os.environ.get("EVO_FIDELITY", "") or "tiny"
        threads = _env_int("EVO_THREADS", 0, low=0)
        if threads:
            torch.set_num_threads(threads)
        self.device = _select_device()
        self.cuda = self.device.type == "cuda"
        self.scale = _env_int("TINYGPT_SCALE", 1)
        self.eval_seq_len = _env_int("TINYGPT_EVAL_SEQ_LEN", 128, low=8)
        self.vocab_size = VOCAB_SIZE
        self.budget_tokens = _env_float("TINYGPT_BUDGET_TOKENS")
        self.budget_seconds = _env_float("TINYGPT_BUDGET_SECONDS")
        if self.budget_tokens and self.budget_seconds:
            raise HarnessError("set only one of TINYGPT_BUDGET_TOKENS and TINYGPT_BUDGET_SECONDS")
        if not (self.budget_tokens or self.budget_seconds):
            self.budget_tokens = 300_000.0  # the tiny fidelity
        self.warmup_steps = _env_int("TINYGPT_WARMUP_STEPS", 2 if self.budget_seconds else 0,
                                     low=0)
        val_tokens = _env_int("TINYGPT_VAL_TOKENS", 32_768, low=self.eval_seq_len + 1)
        self._result_path = os.environ.get("EVO_RESULT", "")

        torch.manual_seed(self.seed)
        if self.cuda:
            torch.cuda.manual_seed_all(self.seed)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.cuda.reset_peak_memory_stats()

        train, val, self.corpus_sha256 = load_corpus(_env_int("TINYGPT_DATA_BYTES", 2_000_000))
        self._train = torch.frombuffer(bytearray(train), dtype=torch.uint8).to(self.device)
        n_seq = min(val_tokens, len(val) - 1) // (self.eval_seq_len + 1)
        if n_seq < 1:
            raise HarnessError(f"validation text ({len(val)} bytes) is shorter than one "
                               f"sequence of {self.eval_seq_len + 1}; lower TINYGPT_EVAL_SEQ_LEN")
        val_t = torch.frombuffer(bytearray(val), dtype=torch.uint8)
        self._val = val_t[: n_seq * (self.eval_seq_len + 1)].view(n_seq, -1).long()
        self._gen = torch.Generator().manual_seed(self.seed)

        self.steps = 0
        self.tokens = 0
        self._timed_tokens = 0
        self._timed_seconds = 0.0
        self._last = 0.0
        self._tokens_at_last = 0
        self._began = False
        self._overshoot = 0
        self._val_bpb_init = float("nan")
        self._params = 0
        self._t_begin = 0.0

    # --- what the training loop calls ----------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA; a no-op on CPU."""
        if self.cuda:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def next_batch(self, batch_size: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random training windows: inputs ``x`` and next-byte targets ``y``, each ``(B, T)``."""
        batch_size, seq_len = int(batch_size), int(seq_len)
        if self._began and self.done():
            self._overshoot += 1
        if batch_size < 1 or not 1 <= seq_len < len(self._train) - 1:
            raise HarnessError(f"next_batch({batch_size}, {seq_len}): need batch_size >= 1 and "
                               f"1 <= seq_len < {len(self._train) - 1}")
        starts = torch.randint(0, len(self._train) - seq_len - 1, (batch_size,),
                               generator=self._gen)
        idx = starts.to(self.device)[:, None] + torch.arange(seq_len + 1, device=self.device)
        chunk = self._train[idx].long()
        self.tokens += batch_size * seq_len
        return chunk[:, :-1], chunk[:, 1:]

    def progress(self) -> float:
        """Fraction of the budget spent, in [0, 1]; the LR schedule reads this."""
        if self.budget_tokens:
            return min(1.0, self.tokens / self.budget_tokens)
        return min(1.0, self._timed_seconds / self.budget_seconds)

    def done(self) -> bool:
        """True once the budget is spent."""
        return self.progress() >= 1.0

    def step_done(self, loss: torch.Tensor) -> float:
        """Record one optimizer step; fail fast (``status: nan``) on NaN or divergence.

        Returns:
            The step's loss as a float.
        """
        value = float(loss.detach().float().item())  # also a device sync, so timing is honest
        now = time.perf_counter()
        self.steps += 1
        if self.steps > self.warmup_steps:
            self._timed_seconds += now - self._last
            self._timed_tokens += self.tokens - self._tokens_at_last
        self._last = now
        self._tokens_at_last = self.tokens
        if not math.isfinite(value) or value > DIVERGED_LOSS:
            self._fail("nan", f"training loss {value} at step {self.steps} "
                              f"(non-finite or > {DIVERGED_LOSS})")
        return value

    def begin(self, model: torch.nn.Module) -> None:
        """Measure the untrained model (val_bpb_init, causality) and start the clock."""
        self._params = sum(p.numel() for p in model.parameters())
        self._check_causal(model, "untrained")
        self._val_bpb_init = self._val_bpb(model)
        model.train()
        self._began = True
        self._t_begin = self._last = time.perf_counter()
        self._tokens_at_last = self.tokens = 0

    def finish(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score the trained model, write the result file and return the summary.

        Exits the process (after writing ``{"status": ...}``) when the run is invalid.
        """
        if not self._began:
            self._fail("invalid_result", "train.py never called harness begin(model)")
        if self.budget_tokens and self.tokens < self.budget_tokens:
            self._fail("invalid_result", f"stopped after {self.tokens} of "
                                         f"{int(self.budget_tokens)} budgeted training tokens")
        wall = time.perf_counter() - self._t_begin
        if self._overshoot:
            self._fail("invalid_result", f"train.py asked for {self._overshoot} batches after "
                                         "the budget was spent (it must stop when done())")
        self._check_causal(model, "trained")
        val_bpb = self._val_bpb(model)
        if not math.isfinite(val_bpb):
            self._fail("nan", f"val_bpb is {val_bpb}")
        if self.cuda:
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        timed = self._timed_seconds
        result = {
            "val_bpb": round(val_bpb, 6),
            "val_bpb_init": round(self._val_bpb_init, 6),
            "params": self._params,
            "log10_params": round(math.log10(max(self._params, 1)), 4),
            "tokens_per_s": round(self._timed_tokens / timed, 1) if timed > 0 else 0.0,
            "peak_mem_mb": round(peak, 1),
            "train_seconds": round(timed, 3),
            "train_wall_seconds": round(wall, 3),
            "steps": self.steps,
            "train_tokens": self.tokens,
            "log2_batch_tokens": round(math.log2(max(self.tokens / max(self.steps, 1), 1)), 4),
            "eval_seq_len": self.eval_seq_len,
            "val_tokens": int(self._val.numel() - self._val.shape[0]),
            "seed": self.seed,
            "scale": self.scale,
            "corpus_sha256": self.corpus_sha256,
            "fidelity": self.fidelity,
            "device": self.device.type,
        }
        self._write(result)
        return result

    # --- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def _logits(self, model: torch.nn.Module, x: torch.Tensor, autocast: bool) -> torch.Tensor:
        with self.autocast() if autocast else contextlib.nullcontext():
            logits = model(x)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (*x.shape, VOCAB_SIZE):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            self._fail("invalid_result", f"model(x) must return logits of shape "
                                         f"{(*x.shape, VOCAB_SIZE)}, got {shape}")
        return logits.float()

    def _val_bpb(self, model: torch.nn.Module) -> float:
        """Bits per byte on the fixed validation slice: mean cross-entropy (nats) / ln 2."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        batch = 16 * self.scale
        for i in range(0, self._val.shape[0], batch):
            chunk = self._val[i:i + batch].to(self.device)
            logits = self._logits(model, chunk[:, :-1], autocast=True)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), chunk[:, 1:].reshape(-1),
                                   reduction="sum")
            total += float(loss)
            count += chunk[:, 1:].numel()
        model.train(was_training)
        return total / count / math.log(2)

    def _check_causal(self, model: torch.nn.Module, when: str) -> None:
        """Logits at positions <= t must not change when tokens after t (or other rows) change."""
        was_training = model.training
        model.eval()
        gen = torch.Generator().manual_seed(1234 + self.seed)
        n = min(4, self._val.shape[0])
        x = self._val[:n, :-1].clone()
        seq = x.shape[1]
        base = self._logits(model, x.to(self.device), autocast=False)
        for t in (0, seq // 3, seq - 2):
            bumped = x.clone()
            # Shift every byte after t and scramble the other rows: a model that attends to the
            # future, or across the batch (where the next validation chunk sits), sees a change.
            bumped[0, t + 1:] = (bumped[0, t + 1:] + 1 + torch.randint(
                0, VOCAB_SIZE - 1, (seq - t - 1,), generator=gen)) % VOCAB_SIZE
            bumped[1:] = torch.randint(0, VOCAB_SIZE, bumped[1:].shape, generator=gen)
            out = self._logits(model, bumped.to(self.device), autocast=False)
            diff = (out[0, :t + 1] - base[0, :t + 1]).abs().max().item()
            if not diff <= CAUSALITY_ATOL:
                self._fail("invalid_result", f"{when} model is not causal: logits at positions "
                                             f"<= {t} changed by {diff:.3g} when later tokens "
                                             "or other batch rows changed")
        model.train(was_training)

    # --- result file ----------------------------------------------------------------------------

    def _write(self, result: dict[str, Any]) -> None:
        global _result
        if _channel is not None:  # sent by _main() once train.py has returned
            if _result is None:
                _result = result
            return
        if not self._result_path:
            return
        path = Path(self._result_path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".result.")
        with os.fdopen(fd, "w") as f:
            json.dump(result, f)
        os.replace(tmp, path)

    def _fail(self, status: str, reason: str) -> None:
        """Write ``{"status": status, "reason": reason}`` and end the process with exit 0."""
        self._write({"status": status, "reason": reason, "steps": self.steps,
                     "seed": self.seed, "fidelity": self.fidelity})
        print(f"harness: {status}: {reason}", file=sys.stderr, flush=True)
        raise SystemExit(0)


def setup() -> Run:
    """Read the environment, seed everything, load the data; the training script calls this."""
    try:
        return Run()
    except HarnessError as e:
        print(f"harness: configuration error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


# --- entry point under evo: the result channel ----------------------------------------------------

_channel: tuple[int, str] | None = None
_result: dict[str, Any] | None = None
_dumps, _write_fd, _exit = json.dumps, os.write, os._exit  # bound before train.py runs


def _take_channel() -> tuple[int, str] | None:
    """evo's result descriptor and token, removed from the environment (see evo's docs)."""
    fd_text = os.environ.pop("EVO_RESULT_FD", None)
    token_text = os.environ.pop("EVO_TOKEN_FD", None)
    if fd_text is None or token_text is None:
        return None
    os.environ.pop("EVO_RESULT", None)
    chunks = []
    while chunk := os.read(int(token_text), 256):
        chunks.append(chunk)
    os.close(int(token_text))
    os.set_inheritable(int(fd_text), False)
    return int(fd_text), b"".join(chunks).decode().strip()


def _main(argv: list[str]) -> int:
    """``python harness.py train.py``: run the training script, then send its one result."""
    global _channel
    if len(argv) != 2:
        print("usage: python harness.py train.py", file=sys.stderr)
        return 2
    _channel = _take_channel()
    sys.modules["harness"] = sys.modules[__name__]  # train.py's `import harness` is this module
    sys.argv = argv[1:]
    import runpy
    import traceback

    code = 0
    try:
        runpy.run_path(argv[1], run_name="__main__")
    except SystemExit as e:  # _fail() ends with SystemExit(0) after recording its result
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the script's error: its traceback, exit 1
        traceback.print_exc()
        code = 1
    if _channel is not None and _result is not None and code == 0:
        fd, token = _channel
        data = (_dumps({"token": token, "result": _result}) + "\n").encode()
        while data:
            data = data[_write_fd(fd, data):]
    return code


if __name__ == "__main__":
    _code = _main(sys.argv)
    for _stream in (sys.stdout, sys.stderr):
        try:
            _stream.flush()
        except Exception:  # noqa: BLE001 - the script may have replaced or closed it
            pass
    _exit(_code)  # nothing train.py left behind (atexit hooks, threads) runs after the result
