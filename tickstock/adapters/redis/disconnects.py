"""Why a subscription was lost: the server's own counters before and after, and what the socket saw.

Redis drops a pub/sub subscriber whose unread backlog passes ``client-output-buffer-limit pubsub``
(default 32 MB hard, 8 MB for 60 s soft): the silent-loss case of a slow reader. To tell it from
a network fault, the feed reads a few server counters on every connect (``INFO``, ``INFO commandstats`` and ``CONFIG GET
client-output-buffer-limit``, pipelined with SUBSCRIBE: no extra round trip, nothing per tick)
and, on the reconnect after a loss, compares them with the values read at the previous connect:

- ``client_output_buffer_limit_disconnections`` (INFO stats, Redis >= 7.2; counts every client
  type) went up and the server closed our socket: ``output_buffer_limit``, *confirmed*.
- Redis < 7.2 has no such counter (7.0 logs "scheduled to be closed ASAP for overcoming of output
  buffer limits" and counts nothing). There the socket's own evidence decides: the server closed
  the connection while the reader was behind (the bytes read back to back without ever finding
  the socket empty, up to the close, were at least a full receive buffer's worth) -> the
  output-buffer limit, *inferred*. A server that closes a connection for any other reason
  (CLIENT KILL, shutdown) does not do it to a reader that has megabytes still in flight to it.
- ``run_id`` changed: ``server_restart``; ``evicted_clients`` went up: ``evicted``
  (maxmemory-clients); the CLIENT KILL call count went up: ``killed``.
- No answer to PING: ``half_open``. Otherwise ``server_closed`` (clean close) or
  ``connection_lost`` (reset, refused, timed out).

When the limit is known (CONFIG GET answered) the messages the server threw away with our
backlog are estimated: the hard limit (the soft one if no hard limit) divided by the mean size of
a message as received. It is an estimate: the server may have held anything between the soft
limit and a little more than the hard one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Reasons, as the metric label and the health words say them.
OUTPUT_BUFFER_LIMIT = "output_buffer_limit"
SERVER_RESTART = "server_restart"
EVICTED = "evicted"
KILLED = "killed"
HALF_OPEN = "half_open"
SERVER_CLOSED = "server_closed"
CONNECTION_LOST = "connection_lost"

REASON_WORDS = {
    OUTPUT_BUFFER_LIMIT: "dropped by Redis for a slow reader (output buffer limit)",
    SERVER_RESTART: "lost: the Redis server restarted",
    EVICTED: "dropped by Redis to free client memory (maxmemory-clients)",
    KILLED: "dropped by Redis: CLIENT KILL",
    HALF_OPEN: "lost: no answer to PING (half-open connection)",
    SERVER_CLOSED: "closed by the Redis server",
    CONNECTION_LOST: "lost (network error)",
}

# Read at every connect, pipelined before SUBSCRIBE. Plain INFO (server, clients, stats, ...) and
# INFO commandstats separately: several sections in one INFO needs Redis >= 7. A server that
# refuses any of them (ACL, renamed CONFIG) leaves those figures unknown, nothing more.
CONNECT_COMMANDS = (("INFO",), ("INFO", "commandstats"), ("CONFIG", "GET", "client-output-buffer-limit"))


@dataclass(frozen=True, slots=True)
class ServerCounters:
    """The figures read from the server at one connect; None: the server did not say."""

    run_id: str | None = None
    output_buffer_disconnections: int | None = None  # Redis >= 7.2
    evicted_clients: int | None = None
    client_kills: int | None = None
    pubsub_limit: tuple[int, int, int] | None = None  # (hard bytes, soft bytes, soft seconds)

    @classmethod
    def parse(cls, *infos: Any, limits: Any = None) -> "ServerCounters":
        """From INFO replies (bulk strings) and the CONFIG GET reply (flat list); any may be an
        error reply or None."""
        fields: dict[str, str] = {}
        commandstats = False
        for info in infos:
            if isinstance(info, (bytes, str)):
                text = info.decode("utf-8", "replace") if isinstance(info, bytes) else info
                commandstats = commandstats or "# Commandstats" in text
                for line in text.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not key.startswith("#"):
                        fields[key.strip()] = value.strip()
        # Redis 7 counts per subcommand, and lists a command only once it has been called.
        kills = _calls(fields.get("cmdstat_client|kill"))
        if kills is None and commandstats:
            kills = 0
        return cls(
            run_id=fields.get("run_id"),
            output_buffer_disconnections=_int(fields.get("client_output_buffer_limit_disconnections")),
            evicted_clients=_int(fields.get("evicted_clients")),
            client_kills=kills,
            pubsub_limit=_pubsub_limit(limits),
        )


@dataclass(frozen=True, slots=True)
class LostConnection:
    """What the feed saw when the subscription went: the local half of the diagnosis."""

    kind: str                  # SERVER_CLOSED, CONNECTION_LOST or HALF_OPEN
    detail: str
    behind_bytes: int          # read back to back without finding the socket empty, up to the loss
    behind_threshold: int      # how much of that counts as "the reader was behind"
    mean_message_bytes: float | None  # as received on this connection, RESP framing included


@dataclass(frozen=True, slots=True)
class DisconnectCause:
    reason: str
    detail: str                # in words: the evidence
    confirmed: bool            # the server's own counter says so (else inferred or unknown)
    discarded_messages_estimate: int | None = None  # thrown away with the backlog by the server

    @property
    def words(self) -> str:
        return REASON_WORDS.get(self.reason, "lost")


def classify(before: ServerCounters | None, after: ServerCounters | None,
             lost: LostConnection) -> DisconnectCause:
    """The cause of ``lost``, from the counters read at the previous connect (``before``) and at
    the reconnect (``after``); either may be None (the server did not answer INFO)."""
    if lost.kind == HALF_OPEN:
        return DisconnectCause(HALF_OPEN, lost.detail, False)
    b, a = before or ServerCounters(), after or ServerCounters()
    if b.run_id and a.run_id and b.run_id != a.run_id:
        return DisconnectCause(SERVER_RESTART, f"{lost.detail}; the server's run_id changed", True)
    behind = lost.behind_bytes >= lost.behind_threshold > 0
    behind_words = (f"the reader was behind when the server closed it ({lost.behind_bytes / 2**20:.1f} MiB read "
                    "back to back without once finding its socket empty)")
    counted = _increase(b.output_buffer_disconnections, a.output_buffer_disconnections)
    if counted is not None:
        # The counter is server-wide (any client, since our previous connect): it names our loss
        # only if the server closed our socket or the reader was behind when it went.
        if counted > 0 and (behind or lost.kind == SERVER_CLOSED):
            detail = (f"{lost.detail}; the server counted {counted} output-buffer-limit disconnection(s) "
                      "since the subscription began (client_output_buffer_limit_disconnections)")
            if behind:
                detail += f"; {behind_words}"
            return _output_buffer(detail, True, a.pubsub_limit or b.pubsub_limit, lost)
    elif behind:
        return _output_buffer(f"{lost.detail}; {behind_words} (inferred: this server does not count "
                              "output-buffer-limit disconnections)", False, a.pubsub_limit or b.pubsub_limit, lost)
    evicted = _increase(b.evicted_clients, a.evicted_clients)
    if evicted:
        return DisconnectCause(EVICTED, f"{lost.detail}; the server evicted {evicted} client(s) meanwhile", True)
    kills = _increase(b.client_kills, a.client_kills)
    if kills:
        return DisconnectCause(KILLED, f"{lost.detail}; CLIENT KILL was run {kills} time(s) meanwhile", False)
    return DisconnectCause(lost.kind, lost.detail, False)


def _output_buffer(detail: str, confirmed: bool, limit: tuple[int, int, int] | None,
                   lost: LostConnection) -> DisconnectCause:
    discarded = None
    if limit is not None and lost.mean_message_bytes:
        hard, soft, soft_seconds = limit
        held = hard or soft
        if held:
            discarded = int(held / lost.mean_message_bytes)
            detail += (f"; limit pubsub {_size(hard)} {_size(soft)} {soft_seconds}: "
                       f"~{discarded:,} messages of ~{lost.mean_message_bytes:.0f} B discarded with the backlog "
                       "(estimate)")
    return DisconnectCause(OUTPUT_BUFFER_LIMIT, detail, confirmed, discarded)


def _increase(before: int | None, after: int | None) -> int | None:
    """How much a server counter rose; None if either reading is missing. A counter that went
    down (CONFIG RESETSTAT) counts from zero."""
    if before is None or after is None:
        return None
    return after - before if after >= before else after


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _calls(value: str | None) -> int | None:
    """'calls=10,usec=186,...' -> 10."""
    if not value:
        return None
    for part in value.split(","):
        key, _, number = part.partition("=")
        if key == "calls":
            return _int(number)
    return None


def _pubsub_limit(reply: Any) -> tuple[int, int, int] | None:
    """CONFIG GET client-output-buffer-limit -> [name, 'normal 0 0 0 slave ... pubsub H S T']."""
    if not isinstance(reply, list) or len(reply) < 2 or not isinstance(reply[1], (bytes, str)):
        return None
    value = reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
    words = value.split()
    for i, word in enumerate(words[:-3]):
        if word == "pubsub":
            try:
                return int(words[i + 1]), int(words[i + 2]), int(words[i + 3])
            except ValueError:
                return None
    return None


def _size(n: int) -> str:
    if n and n % 2**20 == 0:
        return f"{n // 2**20}mb"
    if n and n % 1024 == 0:
        return f"{n // 1024}kb"
    return str(n)
