CREATE TABLE `login_attempts` (
	`username_hash` blob PRIMARY KEY NOT NULL,
	`tokens` real NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `login_attempts_updated` ON `login_attempts` (`updated_at`);