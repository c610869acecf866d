-- Estimation-window sessions to leave out: for each pair, the event windows
-- (-5..+10 sessions) of the other pairs of the same security, as days relative to
-- the pair's day 0. Run it in the panel file (duckdb panel.duckdb < this file, or
-- Python: duckdb.connect(FILE).execute(text)), then
-- impact engine --db FILE --exclusions exclusions
CREATE OR REPLACE TABLE exclusions AS
SELECT a.pair_id,
       b.day0_idx - 5 - a.day0_idx AS rel_lo,
       b.day0_idx + 10 - a.day0_idx AS rel_hi
FROM pairs a
JOIN pairs b ON a.ticker = b.ticker AND a.pair_id <> b.pair_id
WHERE b.day0_idx + 10 >= a.day0_idx - 250 AND b.day0_idx - 5 <= a.day0_idx - 11;
