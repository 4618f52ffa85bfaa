-- A site's business hours (JSON: time zone, weekly schedule, holidays); NULL: always open.
ALTER TABLE sites ADD COLUMN business_hours TEXT;
