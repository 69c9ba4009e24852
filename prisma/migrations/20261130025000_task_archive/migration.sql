-- Where retention moves rows with RETENTION_MODE=archive (src/watchers/retention.ts): the task's
-- columns as they were when it was archived, and when that was. No unique (name, namespace): a name
-- is free again once its task is archived, so two archived tasks may share it. Nothing in nightwatch
-- reads this table; it is the operator's, to query, export or prune.
CREATE TABLE `task_archive` (
    `id` BIGINT UNSIGNED NOT NULL,
    `name` VARCHAR(253) NOT NULL,
    `namespace` VARCHAR(253) NOT NULL,
    `info` LONGTEXT NOT NULL,
    `status` VARCHAR(32) NOT NULL,
    `user_id` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `created_at` DATETIME(3) NOT NULL,
    `updated_at` DATETIME(3) NOT NULL,
    `reason` TEXT NULL,
    `attempt` INTEGER UNSIGNED NOT NULL,
    `started_at` DATETIME(3) NULL,
    `finished_at` DATETIME(3) NULL,
    `archived_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `task_archive_user_id_id_idx`(`user_id`, `id`),
    INDEX `task_archive_archived_at_idx`(`archived_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
