-- Decisions the operator may have to report (issue 16: a likely minor in likely sexual
-- content, reason minor_sexual). A flag for the operator's own process, listed by
-- GET /v1/moderation/decisions?legal_report=true; nothing is sent anywhere.
ALTER TABLE moderation_decisions ADD COLUMN legal_report boolean NOT NULL DEFAULT false;
CREATE INDEX moderation_decisions_legal_report ON moderation_decisions (seq)
    WHERE legal_report;
