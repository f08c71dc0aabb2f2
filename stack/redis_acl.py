"""The Redis ACL of the stack: a gateway user with only the commands it sends, an admin, no default user."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

ADMIN_USER = "admin"

# Every command the gateway sends, itself or from its Lua scripts (Redis checks those against the ACL too).
# A command missing here fails with NOPERM, which the store counts as Redis unavailable: a bypass.
GATEWAY_COMMANDS = (
    "ping", "select",                                     # readiness probe, redis://host/db
    "get", "mget", "set", "del", "unlink", "exists",      # lookups, and inside the scripts
    "incr", "incrby",                                     # the epoch (redis-py's incr() sends INCRBY)
    "pexpire", "pttl", "time",                            # inside the scripts
    "zadd", "zrange", "zrem", "zremrangebyscore",         # tag indexes and tag write fences, in scripts
    "evalsha", "eval", "script|load",                     # redis-py loads a script on its first NOSCRIPT
    "multi", "exec", "expire", "zrangebyscore",           # token revocations: the sorted set...
    "publish", "subscribe", "unsubscribe",                # ...and the channel every process follows
    "scan",                                               # an admin purge by key prefix
    # redis-py's cluster client: the slot map (at start and after a MOVED or a lost node), the key positions
    # of commands (COMMAND, once per client), and ASKING before a command redirected by -ASK while a slot
    # migrates. It sends READONLY only when reading from replicas, which the gateway does not do.
    "cluster|slots", "command", "asking",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def gateway_rules() -> str:
    """The gateway's ACL rules without its password: every key and channel, nothing but its commands.

    Keys are not restricted to cache.prefix: the prefix may differ per config (the tests give every config
    its own) while the Redis and its users stay. Channels are allowed (`&*`) because Redis 7 grants none by
    default, so a pub/sub command added above works without a second change here.
    """
    return "~* &* -@all " + " ".join(f"+{name}" for name in GATEWAY_COMMANDS)


def _hashed(password: str) -> str:
    # Redis accepts SHA-256 hashes in ACL rules: the config file holds no password in clear.
    return "#" + hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class RedisUsers:
    """Who may talk to a Redis of the stack: the gateway's user, and the admin (launcher, operators)."""

    gateway_user: str
    gateway_password: str = field(repr=False)
    admin_password: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.gateway_user in (ADMIN_USER, "default") or not _NAME.fullmatch(self.gateway_user):
            raise ValueError(f"redis user name {self.gateway_user!r}: expected a plain name other than "
                             f"{ADMIN_USER} and default")
        for password in (self.gateway_password, self.admin_password):
            if not password or any(c.isspace() for c in password):
                raise ValueError("a Redis password must be non-empty and without spaces")

    def conf_lines(self) -> list[str]:
        """`user` lines for redis.conf; `default` is switched off: a client without AUTH gets NOAUTH."""
        return [
            "user default reset",
            f"user {self.gateway_user} reset on {_hashed(self.gateway_password)} {gateway_rules()}",
            f"user {ADMIN_USER} reset on {_hashed(self.admin_password)} ~* &* +@all",
        ]
