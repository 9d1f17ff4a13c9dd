-- The daily reminder e-mail (客户提醒): whether a person wants it, and the last day it was sent.
ALTER TABLE users ADD COLUMN reminder_email BIGINT NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN reminders_sent_on TEXT;
