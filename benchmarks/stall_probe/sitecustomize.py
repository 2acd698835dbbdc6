"""A stall probe for `tessera serve`: where a server's pauses come from, while a benchmark
runs. Not part of Tessera; nothing imports it. Use it by putting this folder first on the
server's PYTHONPATH (the benchmarks pass their environment to the server they start):

    STALL_PROBE=/tmp/probe PYTHONPATH=benchmarks/stall_probe \\
        .venv/bin/python benchmarks/personalize.py --ingest 1000

Each server process writes `$STALL_PROBE.<pid>` with one line per finding:

- `GC`: a cyclic garbage collection over 10 ms (generation, length, thread that ran it);
- `LATE`: a thread that sleeps 20 ms woke over 300 ms late (the GIL held elsewhere:
  a GC, a long C call), preceded by every thread's stack at the moment it was 300 ms
  late (`faulthandler.dump_traceback_later` runs without the GIL);
- `LOOPSTALL`: the event loop ran no callback for over 200 ms, with the loop thread's
  stack at that moment (what blocks it: SQL in an async handler, for instance).

Only processes whose command line contains `serve` are probed.
"""

import os
import sys

_TARGET = os.environ.get("STALL_PROBE")

if _TARGET and "serve" in sys.argv:
    import faulthandler
    import gc
    import threading
    import time
    import traceback

    _out = open(f"{_TARGET}.{os.getpid()}", "w", buffering=1)  # noqa: SIM115
    _gc_started: dict[str, float] = {}
    _beat: dict[str, float | int | None] = {"at": None, "thread": None, "dumped": 0.0}

    def _gc(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_started["at"] = time.perf_counter()
            return
        took = time.perf_counter() - _gc_started.get("at", time.perf_counter())
        if took > 0.01:
            _out.write(
                f"GC t={time.time():.3f} gen={info['generation']} {took * 1000:.1f}ms "
                f"collected={info['collected']} thread={threading.current_thread().name}\n"
            )

    def _gil_watch() -> None:
        last = time.perf_counter()
        while True:
            faulthandler.dump_traceback_later(0.3, file=_out)
            time.sleep(0.02)
            now = time.perf_counter()
            if now - last > 0.3:
                _out.write(f"LATE t={time.time():.3f} by {(now - last) * 1000:.0f}ms\n")
            last = now

    def _loop_watch() -> None:
        while True:
            time.sleep(0.05)
            at = _beat["at"]
            if at is None:
                continue
            stale = time.perf_counter() - at
            if stale > 0.2 and time.perf_counter() - _beat["dumped"] > 0.5:
                _beat["dumped"] = time.perf_counter()
                frame = sys._current_frames().get(_beat["thread"])
                _out.write(f"LOOPSTALL t={time.time():.3f} stale {stale * 1000:.0f}ms\n")
                if frame is not None:
                    _out.write("".join(traceback.format_stack(frame)[-14:]))

    gc.callbacks.append(_gc)
    threading.Thread(target=_gil_watch, daemon=True, name="stall-probe-gil").start()
    threading.Thread(target=_loop_watch, daemon=True, name="stall-probe-loop").start()

    import uvicorn.server

    _startup = uvicorn.server.Server.startup

    async def _startup_with_heartbeat(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        import asyncio

        async def heartbeat() -> None:
            _beat["thread"] = threading.get_ident()
            while True:
                _beat["at"] = time.perf_counter()
                await asyncio.sleep(0.01)

        asyncio.get_running_loop().create_task(heartbeat())
        return await _startup(self, *args, **kwargs)

    uvicorn.server.Server.startup = _startup_with_heartbeat
