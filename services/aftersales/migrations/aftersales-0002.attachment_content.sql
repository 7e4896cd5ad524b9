-- Evidence bytes live in the database (a pod's local folder is lost on rescheduling): one row
-- per uploaded attachment, at most the configured size (the API refuses more before storing).
CREATE TABLE case_attachment_content (
    attachment_id  text PRIMARY KEY REFERENCES case_attachments (attachment_id) ON DELETE CASCADE,
    content        bytea NOT NULL
);

ALTER TABLE case_attachments DROP CONSTRAINT case_attachments_storage_check;
ALTER TABLE case_attachments
    ADD CONSTRAINT case_attachments_storage_check CHECK (storage IN ('local', 'url', 'database'));
