CREATE TABLE `federation_peers` (
	`domain` text PRIMARY KEY NOT NULL,
	`url` text NOT NULL,
	`public_key` blob NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `remote_identities` (
	`identity_key` blob PRIMARY KEY NOT NULL,
	`domain` text NOT NULL,
	`learned_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `remote_identities_domain` ON `remote_identities` (`domain`);