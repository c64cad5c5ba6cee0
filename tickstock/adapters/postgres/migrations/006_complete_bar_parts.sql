-- A COMPLETE part of a minute is the whole truth of that minute (replaying a stored day doubled
-- its volumes: the replay's parts were summed with the first run's).
--
-- Each part now says whether its session saw the whole minute (partial = false) or only part of it
-- (a start or stop mid-minute, a gap in the subscription). The minute's row in ohlcv_1min is the
-- complete part written last if there is one, else the merge of the partial parts as before
-- (tickstock/adapters/postgres/parts.py). Parts written before this migration are taken as partial:
-- they keep merging exactly as they did.

ALTER TABLE ohlcv_1min_parts ADD COLUMN IF NOT EXISTS partial BOOLEAN NOT NULL DEFAULT true;
