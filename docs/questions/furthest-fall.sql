-- README question 1: which security fell furthest over CAR[0, +1]?
SELECT ticker, round(car * 100, 2) AS car_pct, round(t, 2) AS t, round(p, 4) AS p
FROM latest_car
WHERE event_id = 'deepseek-app-store' AND model = 'market'
  AND window_start = 0 AND window_end = 1
ORDER BY car
LIMIT 1;
