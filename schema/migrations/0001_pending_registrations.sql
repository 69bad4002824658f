CREATE TABLE `pending_registrations` (
	`id` blob PRIMARY KEY NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `pending_registrations_expiry` ON `pending_registrations` (`expires_at`);