-- Issue 17: suspension. A consent can be suspended (while a dispute about it is investigated,
-- say) and resumed; meanwhile its tokens read SUSPENDED (2) online and in their status lists,
-- and no new token is issued. The record's status stays 'active': suspension is a state over
-- an active record, so a suspended consent can still be withdrawn or erased, which ends the
-- suspension (the columns are cleared; the audit log keeps the history).
--
-- New tokens go to 2-bit status lists (a 1-bit list cannot say SUSPENDED); tokens of 1-bit
-- lists issued before are revoked by a suspension instead (see registry.consent.suspension).
-- The service role already updates consent_records, issued_tokens and status_lists (0010).
ALTER TABLE consent_records
    -- When the suspension began, and the client that suspended it; NULL when not suspended.
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN suspended_by text,
    ADD CONSTRAINT consent_records_suspension
        CHECK ((suspended_at IS NULL) = (suspended_by IS NULL)
               AND (suspended_at IS NULL OR status = 'active'));
