"""Redis adapters: the tick feed subscriber and the event publisher."""

from tickstock.adapters.redis.disconnects import DisconnectCause
from tickstock.adapters.redis.feed import FeedDisconnected, RedisTickFeed
from tickstock.adapters.redis.publisher import PublishIncomplete, RedisPublisher
from tickstock.adapters.redis.resp import RedisReplyError, RedisUnavailable

__all__ = ["DisconnectCause", "FeedDisconnected", "RedisTickFeed", "PublishIncomplete", "RedisPublisher", "RedisReplyError", "RedisUnavailable"]
