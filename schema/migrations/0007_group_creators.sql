-- Groups whose creator deleted the account before DeleteAccount passed the role on have no
-- creator-role member: the longest-standing admin, else the longest-standing member, becomes
-- the creator, and channels.creator_key follows (what DeleteAccount does now).
UPDATE `channel_members` SET `role` = 'creator' WHERE rowid IN (
  SELECT (SELECT m.rowid FROM `channel_members` m WHERE m.channel_id = c.id
          ORDER BY (m.role = 'admin') DESC, m.joined_at, m.identity_key LIMIT 1)
  FROM `channels` c
  WHERE c.kind = 'group'
    AND NOT EXISTS (SELECT 1 FROM `channel_members` x WHERE x.channel_id = c.id AND x.role = 'creator')
);
--> statement-breakpoint
UPDATE `channels` SET `creator_key` = (
  SELECT m.identity_key FROM `channel_members` m WHERE m.channel_id = `channels`.id AND m.role = 'creator' LIMIT 1
)
WHERE `kind` = 'group'
  AND EXISTS (SELECT 1 FROM `channel_members` m WHERE m.channel_id = `channels`.id AND m.role = 'creator')
  AND NOT EXISTS (
    SELECT 1 FROM `channel_members` m
    WHERE m.channel_id = `channels`.id AND m.role = 'creator' AND m.identity_key = `channels`.creator_key
  );
