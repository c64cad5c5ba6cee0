-- Common TA-Lib patterns and indicators and the session VWAP (issue 10), seeded DISABLED: they are
-- there to be switched on by an operator, e.g.
--     UPDATE pattern_definitions SET enabled = true WHERE name = 'Engulfing';
-- and the baseline set (002) stays exactly what runs on a fresh database.
--
-- Names are the ones the service publishes (tickstock/analysis/talib_catalog.py: a candle's
-- friendly name from TA-Lib's display name, an indicator's TA-Lib function name), so the events
-- and rows carry the row's own name. Parameters are TA-Lib's; min_bars_required is left NULL (the
-- component knows TA-Lib's lookback for the parameters it is given) and so is the threshold.
-- Same rules as 002: a row is inserted only when no row of that name exists in any letter case,
-- and an operator's edit is never overwritten.

INSERT INTO pattern_definitions
    (name, display_name, short_description, category, enabled, display_order,
     applicable_timeframes, min_bars_required, instantiation_params)
SELECT v.name, v.display_name, v.short_description, 'candlestick', false, v.display_order,
       '{intraday}'::VARCHAR(20)[], NULL, '{}'::JSONB
FROM (VALUES
    ('Engulfing', 'Engulfing', 'A body engulfing the previous one: reversal (TA-Lib CDLENGULFING)', 10),
    ('MorningStar', 'Morning Star', 'Long black, small star, long white: bullish reversal (CDLMORNINGSTAR)', 11),
    ('EveningStar', 'Evening Star', 'Long white, small star, long black: bearish reversal (CDLEVENINGSTAR)', 12),
    ('ShootingStar', 'Shooting Star', 'Small body low in the range, long upper shadow: bearish (CDLSHOOTINGSTAR)', 13),
    ('Harami', 'Harami', 'A small body inside the previous long one: reversal (CDLHARAMI)', 14),
    ('ThreeAdvancingWhiteSoldiers', 'Three White Soldiers', 'Three long rising white candles: bullish (CDL3WHITESOLDIERS)', 15),
    ('ThreeBlackCrows', 'Three Black Crows', 'Three long falling black candles: bearish (CDL3BLACKCROWS)', 16)
) AS v(name, display_name, short_description, display_order)
WHERE NOT EXISTS (SELECT 1 FROM pattern_definitions p WHERE lower(p.name) = lower(v.name))
ORDER BY v.display_order  -- ids follow display order on every PostgreSQL version
ON CONFLICT (name) DO NOTHING;

INSERT INTO indicator_definitions
    (name, display_name, short_description, category, enabled, display_order,
     applicable_timeframes, min_bars_required, period, parameters, output_type)
SELECT v.name, v.display_name, v.short_description, v.category, false, v.display_order,
       '{intraday}'::VARCHAR(20)[], NULL, v.period, v.parameters::JSONB, 'value'
FROM (VALUES
    ('VWAP', 'Session VWAP', 'Volume-weighted average price since the regular session''s open', 'volume', 10,
     NULL, '{}'),
    ('EMA', 'Exponential Moving Average', 'TA-Lib EMA of the closes', 'trend', 11, 20, '{}'),
    ('MACD', 'MACD', 'TA-Lib MACD: values macd, signal, hist', 'momentum', 12, NULL,
     '{"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}'),
    ('BBANDS', 'Bollinger Bands', 'TA-Lib BBANDS: values upper, middle, lower', 'volatility', 13, 20,
     '{"nbdevup": 2.0, "nbdevdn": 2.0}'),
    ('ATR', 'Average True Range', 'TA-Lib ATR (Wilder)', 'volatility', 14, 14, '{}'),
    ('ADX', 'Average Directional Index', 'TA-Lib ADX: trend strength, 0-100', 'trend', 15, 14, '{}'),
    ('STOCH', 'Stochastic', 'TA-Lib STOCH: values slowk, slowd', 'momentum', 16, NULL, '{}')
) AS v(name, display_name, short_description, category, display_order, period, parameters)
WHERE NOT EXISTS (SELECT 1 FROM indicator_definitions i WHERE lower(i.name) = lower(v.name))
ORDER BY v.display_order  -- ids follow display order on every PostgreSQL version
ON CONFLICT (name) DO NOTHING;
