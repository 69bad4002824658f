CREATE TABLE `devices` (
	`identity_key` blob NOT NULL,
	`device_id` blob NOT NULL,
	`name` text DEFAULT '' NOT NULL,
	`created_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	PRIMARY KEY(`identity_key`, `device_id`)
);
--> statement-breakpoint
CREATE TABLE `last_resort_key_packages` (
	`identity_key` blob PRIMARY KEY NOT NULL,
	`package` blob NOT NULL,
	`fingerprint` blob NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `push_tokens` (
	`identity_key` blob NOT NULL,
	`device_id` blob NOT NULL,
	`platform` text NOT NULL,
	`token` blob NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`identity_key`, `device_id`)
);
--> statement-breakpoint
ALTER TABLE `users` ADD `deleting_at` integer;--> statement-breakpoint
-- Every account has a default device (the empty id): accounts registered before devices existed get theirs here.
INSERT OR IGNORE INTO `devices` (`identity_key`, `device_id`, `name`, `created_at`, `last_seen_at`) SELECT `identity_key`, x'', 'default', `created_at`, `created_at` FROM `users`;
