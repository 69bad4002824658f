CREATE TABLE `blob_access` (
	`blob_hash` blob NOT NULL,
	`identity_key` blob NOT NULL,
	`owner_key` blob NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`blob_hash`, `identity_key`, `owner_key`)
);
--> statement-breakpoint
CREATE INDEX `blob_access_owner` ON `blob_access` (`owner_key`);--> statement-breakpoint
CREATE INDEX `blob_access_expiry` ON `blob_access` (`expires_at`);--> statement-breakpoint
CREATE TABLE `blob_uploads` (
	`owner_key` blob NOT NULL,
	`blob_hash` blob NOT NULL,
	`upload_id` text NOT NULL,
	`total_size` integer NOT NULL,
	`received` integer NOT NULL,
	`share_with` blob NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`owner_key`, `blob_hash`)
);
--> statement-breakpoint
CREATE UNIQUE INDEX `blob_uploads_id` ON `blob_uploads` (`upload_id`);--> statement-breakpoint
CREATE INDEX `blob_uploads_expiry` ON `blob_uploads` (`expires_at`);--> statement-breakpoint
CREATE TABLE `blobs` (
	`hash` blob PRIMARY KEY NOT NULL,
	`size` integer NOT NULL,
	`storage_id` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `p2p_endpoints` (
	`identity_key` blob NOT NULL,
	`device_id` blob NOT NULL,
	`address` blob NOT NULL,
	`published_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`identity_key`, `device_id`)
);
--> statement-breakpoint
CREATE INDEX `p2p_endpoints_expiry` ON `p2p_endpoints` (`expires_at`);--> statement-breakpoint
CREATE TABLE `rate_buckets` (
	`key` blob PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `rate_buckets_updated` ON `rate_buckets` (`updated_at`);--> statement-breakpoint
CREATE TABLE `recovery_bundles` (
	`token_hash` blob PRIMARY KEY NOT NULL,
	`identity_key` blob NOT NULL,
	`bundle` blob NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `recovery_bundles_identity` ON `recovery_bundles` (`identity_key`);