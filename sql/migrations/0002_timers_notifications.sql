-- Delivery state of notifications: the next attempt's time (NULL: parked until the machine is
-- repaired), the attempts failed so far and the last error. The index serves the delivery
-- loop, which claims due notifications in time order.

ALTER TABLE mg_notifications
    ADD COLUMN attempt    integer NOT NULL DEFAULT 0,
    ADD COLUMN deliver_at timestamptz,
    ADD COLUMN last_error text;

CREATE INDEX mg_notifications_deliver_at ON mg_notifications (deliver_at)
    WHERE deliver_at IS NOT NULL;
