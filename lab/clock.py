"""One scaled clock: every duration in the lab is simulated seconds divided by --speed."""

import asyncio
import time


class ScaledClock:
    """Simulated time that runs `speed` times faster than the wall clock.

    `now()` is monotonic simulated seconds. `start` lets a restarted lab continue
    where the previous run stopped, so saved timestamps never lie in the future.
    """

    def __init__(self, speed=1.0, start=0.0, wall_start=None):
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._start = float(start)
        self._wall_start = wall_start if wall_start is not None else time.time() - start

    def now(self):
        return self._start + (time.monotonic() - self._t0) * self.speed

    def wall(self):
        """Simulated wall-clock epoch seconds (for ctime strings)."""
        return self._wall_start + self.now()

    async def sleep(self, seconds):
        """Sleep for `seconds` of simulated (real-world) time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)
