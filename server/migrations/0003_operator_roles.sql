-- Operator accounts: every staff account is an agent; `admin` ones also reach the admin API and
-- the operator's console (`/admin`).
ALTER TABLE agents ADD COLUMN role TEXT NOT NULL DEFAULT 'agent';
