-- Issue 16, item 2: what the gate recorded about a decision without holding it against the
-- request (a score under a category the policy does not name, a face-similarity score the
-- consent does not permit, an absent manifest on a consented output). Without this column
-- those notes lived only in the sealed evidence, where neither the decision's record nor a
-- reviewer's reason list shows them. Reason codes only: nothing here names a person.
ALTER TABLE moderation_decisions ADD COLUMN notes text[] NOT NULL DEFAULT '{}';
