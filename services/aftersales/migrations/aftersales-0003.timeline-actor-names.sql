-- depends: aftersales-0002.attachment_content

-- The acting person's display name at the time of the action (NULL: a policy, a consumer, a
-- key, or an entry from before).
ALTER TABLE case_timeline ADD COLUMN actor_name text;
