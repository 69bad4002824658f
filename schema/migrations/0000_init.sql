CREATE TABLE `channel_members` (
	`channel_id` blob NOT NULL,
	`identity_key` blob NOT NULL,
	`role` text NOT NULL,
	`joined_at` integer NOT NULL,
	PRIMARY KEY(`channel_id`, `identity_key`)
);
--> statement-breakpoint
CREATE INDEX `channel_members_identity` ON `channel_members` (`identity_key`);--> statement-breakpoint
CREATE TABLE `channels` (
	`id` blob PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`creator_key` blob NOT NULL,
	`name` text DEFAULT '' NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`default_ttl_secs` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `hybrid_keys` (
	`identity_key` blob PRIMARY KEY NOT NULL,
	`public_key` blob NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `key_packages` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`identity_key` blob NOT NULL,
	`package` blob NOT NULL,
	`fingerprint` blob NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `key_packages_owner` ON `key_packages` (`identity_key`,`id`);--> statement-breakpoint
CREATE TABLE `pending_logins` (
	`id` blob PRIMARY KEY NOT NULL,
	`username` text NOT NULL,
	`server_state` blob NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `pending_logins_expiry` ON `pending_logins` (`expires_at`);--> statement-breakpoint
CREATE TABLE `sessions` (
	`token_hash` blob PRIMARY KEY NOT NULL,
	`identity_key` blob NOT NULL,
	`device_id` blob NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `sessions_identity` ON `sessions` (`identity_key`);--> statement-breakpoint
CREATE TABLE `users` (
	`username` text PRIMARY KEY NOT NULL,
	`identity_key` blob NOT NULL,
	`opaque_record` blob NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_identity_key` ON `users` (`identity_key`);