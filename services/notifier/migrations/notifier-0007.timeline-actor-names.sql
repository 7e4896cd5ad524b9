-- depends: notifier-0006.console-oidc

-- The acting person's display name at the time of the action, so a timeline names people
-- outside the console too (NULL: the system, a key, or an entry from before).
ALTER TABLE work_item_timeline ADD COLUMN actor_name text;
