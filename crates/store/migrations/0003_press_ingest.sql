-- Presses are decided in batches: each press looks up the duty that had begun at its moment at
-- its window, newest first.
CREATE INDEX duties_window_start ON duties(window_id, started_at);
