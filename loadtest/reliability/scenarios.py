"""The scenarios of the fault suite, what each one expects, and which of them the quick mode runs.

`allowed` is what clients may see while the faulty component is down, from the fault until RECOVERY_GRACE_S
after it is back, and only on the requests that need it: a status (502, 503, 504) carrying the JSON error
body, or `transport`: a request the gateway could not answer at all (refused or cut connection). Anything
else that is not a 2xx, at any time, is unexpected, and so is every violation of the history checker.
"""
from __future__ import annotations

from dataclasses import dataclass

RECOVERY_GRACE_S = 5.0       # after the component is back: breaker reset (2 s), readiness (1 s), new pools
SUPERVISED_WAIT_S = 30.0     # a killed process: how long the stack's supervisor has before the harness acts
PROXY_KILL_IN_FLIGHT_S = 0.3  # a write waiting this long on the locked row is in flight at the backend
REDIS_FULL_HEADROOM = 0      # maxmemory = what Redis uses when the fault starts + this: full at once
FLOOD_FD_LIMIT = 2048        # the proxy's soft RLIMIT_NOFILE during the connection flood (restored after)
BURST_CLIENTS = 1000
UNAVAILABLE = ("502", "503", "504")
BURST_ROUNDS = 3


@dataclass(frozen=True)
class Timing:
    baseline_s: float    # traffic before the fault
    hold_s: float        # how long the fault lasts (a killed process: at least the wait for its restart)
    after_s: float       # traffic after the component is back


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str                   # kill | pause | proxy-kill | abuse | burst | redis-full
    target: str                  # the process the fault hits
    needs: tuple[str, ...]       # request paths that depend on it ("/" : every request)
    allowed: tuple[str, ...]     # statuses ("502", "503", "504") and "transport"
    expect: str                  # the expectation, as the report states it


def _kill(target: str, needs: tuple[str, ...], what: str) -> Scenario:
    return Scenario(f"{target}-killed", "kill", target, needs, UNAVAILABLE,
                    f"SIGKILL {target}; {what} may answer 502/503/504 (JSON error) until it is back (plus "
                    f"{RECOVERY_GRACE_S:.0f} s); cache hits keep being served; nothing lost, nothing stale")


ALL = [
    Scenario("redis-killed", "kill", "redis", (), (),
             "SIGKILL Redis (restarted empty): every request still 2xx (a bypass), nothing stale"),
    Scenario("redis-paused", "pause", "redis", (), (),
             "SIGSTOP Redis, SIGCONT after the hold: every request still 2xx (a bypass), nothing stale"),
    _kill("users", ("/users", "/auth"), "requests for users that miss the cache"),
    _kill("paths", ("/paths",), "requests for paths that miss the cache"),
    _kill("trips", ("/trips",), "requests for trips that miss the cache"),
    Scenario("mariadb-killed", "kill", "mariadb", ("/",), UNAVAILABLE,
             "SIGKILL MariaDB; requests that need the database may answer 502/503/504 (JSON error) until "
             f"it is back (plus {RECOVERY_GRACE_S:.0f} s); no acknowledged write lost"),
    Scenario("invalidator-killed", "kill", "invalidator", (), (),
             "SIGKILL the invalidator: past its lag bound the routes it covers bypass the cache; every "
             "request still 2xx, nothing stale, and it resumes from its saved position when it is back"),
    Scenario("proxy-killed", "proxy-kill", "proxy", ("/",), ("transport",),
             "SIGKILL the proxy while a write waits on a locked row (it commits after the kill): clients "
             "get no answer until it is back; then every read shows the committed version (write fence)"),
    Scenario("slow-clients", "abuse", "proxy", (), (),
             "idle connections, headers sent a line every 2 s, PATCHes promising a 100 GB body: the normal "
             "clients still get only 2xx (what the gateway does with the slow ones is reported)"),
    Scenario("connection-flood", "abuse", "proxy", ("/",), ("503",),
             f"idle connections beyond the proxy's file limit (lowered to {FLOOD_FD_LIMIT} by pid): the "
             "normal clients still get 2xx (or, at a connection limit, a 503 with the JSON error), never a "
             "refused or cut connection"),
    Scenario("cold-burst", "burst", "proxy", (), (),
             f"a new key epoch (cache off, on), then {BURST_CLIENTS:,} clients at once on the cold cache: "
             "zero 5xx"),
    Scenario("redis-full", "redis-full", "redis", (), (),
             "Redis maxmemory set to what it uses (CONFIG SET as its admin), under the stack's eviction "
             "policy, then under noeviction, reads over many distinct keys: zero 5xx, nothing stale, and "
             "an evicting full Redis is not taken for a failed one (no CACHE-UNAVAILABLE): what it holds "
             "keeps being served; under noeviction a refused write makes the gateway bypass until the key "
             "epoch can move"),
]
QUICK_NAMES = ("redis-killed", "redis-paused", "users-killed", "mariadb-killed", "proxy-killed")
FULL_TIMING = Timing(baseline_s=3.0, hold_s=6.0, after_s=8.0)
QUICK_TIMING = Timing(baseline_s=2.0, hold_s=3.0, after_s=6.0)


def select(quick: bool, only: list[str] | None = None) -> list[Scenario]:
    """The scenarios of a run, in order; `only` picks some by name (unknown names: ValueError)."""
    known = {s.name: s for s in ALL}
    if only:
        missing = [name for name in only if name not in known]
        if missing:
            raise ValueError(f"unknown scenario {', '.join(missing)}; known: {', '.join(known)}")
        return [known[name] for name in only]
    return [s for s in ALL if s.name in QUICK_NAMES] if quick else list(ALL)
