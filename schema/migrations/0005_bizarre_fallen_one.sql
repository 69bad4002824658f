CREATE TABLE `bans` (
	`identity_key` blob NOT NULL,
	`channel_id` blob NOT NULL,
	`reason` text NOT NULL,
	`banned_by` blob NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`identity_key`, `channel_id`)
);
--> statement-breakpoint
CREATE INDEX `bans_channel` ON `bans` (`channel_id`);--> statement-breakpoint
CREATE TABLE `reports` (
	`id` blob PRIMARY KEY NOT NULL,
	`reporter_key` blob NOT NULL,
	`reported_key` blob NOT NULL,
	`channel_id` blob NOT NULL,
	`evidence` blob NOT NULL,
	`reason` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `reports_created` ON `reports` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `reports_reporter` ON `reports` (`reporter_key`);--> statement-breakpoint
ALTER TABLE `channels` ADD `key_epoch` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `channels` ADD `keys_rotated_at` integer DEFAULT 0 NOT NULL;