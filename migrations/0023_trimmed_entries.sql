-- An image added to a hash list also keeps the hashes of itself without its border, when
-- it has one (moderation.signals.stored_signals): a photo on a white page framed again in
-- white trims to the same content as the listed page does, where neither signal matches
-- the framed copy whole. Its entry's crop says so.
ALTER TABLE hash_list_entries DROP CONSTRAINT hash_list_entries_crop_check;
ALTER TABLE hash_list_entries ADD CONSTRAINT hash_list_entries_crop_check
    CHECK (crop ~ '^((left|right|top|bottom|centre) [0-9]{1,2}%|without border)$');
