-- Baseline definitions, so a fresh database never loads 0 definitions (a real, silent incident).
--
-- Never overwrite an operator's edit: a row is inserted only when no row of the same name exists
-- in ANY letter case. The service maps rows to detectors case-insensitively, so seeding 'Doji'
-- next to an operator's disabled 'doji' would silently switch that detector back on.
-- ON CONFLICT (name) DO NOTHING stays as the last line of defence.
-- code_reference and confidence_threshold are left NULL: the service never imports code, and a
-- threshold is the operator's decision, not the seed's.

INSERT INTO pattern_definitions
    (name, display_name, short_description, category, enabled, display_order,
     applicable_timeframes, min_bars_required, instantiation_params)
SELECT v.name, v.display_name, v.short_description, v.category, true, v.display_order,
       '{intraday}'::VARCHAR(20)[], v.min_bars_required, '{}'::JSONB
FROM (VALUES
    ('Doji', 'Doji', 'Open and close nearly equal: indecision', 'candlestick', 1, 1),
    ('Hammer', 'Hammer', 'Small body near the high with a long lower shadow', 'candlestick', 2, 2),
    ('HeadShoulders', 'Head and Shoulders', 'Three peaks, the middle highest: bearish reversal',
     'chart', 3, 20),
    ('InverseHeadShoulders', 'Inverse Head and Shoulders',
     'Three troughs, the middle lowest: bullish reversal', 'chart', 4, 20)
) AS v(name, display_name, short_description, category, display_order, min_bars_required)
WHERE NOT EXISTS (SELECT 1 FROM pattern_definitions p WHERE lower(p.name) = lower(v.name))
ORDER BY v.display_order  -- ids follow display order on every PostgreSQL version
ON CONFLICT (name) DO NOTHING;

INSERT INTO indicator_definitions
    (name, display_name, short_description, category, enabled, display_order,
     applicable_timeframes, min_bars_required, period, parameters, output_type)
SELECT v.name, v.display_name, v.short_description, v.category, true, v.display_order,
       '{intraday}'::VARCHAR(20)[], v.min_bars_required, v.period, v.parameters::JSONB, 'value'
FROM (VALUES
    ('RSI', 'Relative Strength Index', 'Momentum oscillator, 0-100', 'momentum', 1, 15, 14,
     '{"period": 14}'),
    ('SMA', 'Simple Moving Average', 'Arithmetic mean of the last closes', 'trend', 2, 20, 20,
     '{"period": 20}')
) AS v(name, display_name, short_description, category, display_order, min_bars_required,
       period, parameters)
WHERE NOT EXISTS (SELECT 1 FROM indicator_definitions i WHERE lower(i.name) = lower(v.name))
ORDER BY v.display_order  -- ids follow display order on every PostgreSQL version
ON CONFLICT (name) DO NOTHING;
