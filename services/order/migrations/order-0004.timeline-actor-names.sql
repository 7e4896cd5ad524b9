-- depends: order-0002.lifecycle order-0003.recycle_bin

-- The acting person's display name at the time of the action, so timelines name people
-- outside the console too (NULL: a rule, a consumer, a key, or an entry from before).
ALTER TABLE order_timeline ADD COLUMN actor_name text;
ALTER TABLE recycle_bin_causes ADD COLUMN actor_name text;
