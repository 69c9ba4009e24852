-- Recurring tasks (issue 9): a template (name, namespace, info, user) plus its timing. Each run is an
-- ordinary `task` row linked back by `recurring_task_id`.
-- Timing: for cron, calendar and fixed-rate recurring tasks the Temporal Schedule `recurring-<id>` is
-- the source of truth (so `temporal schedule update/pause/trigger` are neither lost nor fought); these
-- columns keep what the user last set through the API. For a fixed delay (no Schedule) the
-- workflow `recurring-<id>` holds the live state and these columns are what it was started with.
--   kind             cron | calendar | rate | delay
--   timing           JSON text: {"cron", "timeZone"} | {"calendar", "timeZone"} | {"every", "offset"} | {"delay"}
--   overlap          SKIP | BUFFER_ONE | BUFFER_ALL | ALLOW_ALL | CANCEL_OTHER | TERMINATE_OTHER
CREATE TABLE `recurring_task` (
    `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `name` VARCHAR(253) NOT NULL,
    `namespace` VARCHAR(253) NOT NULL,
    `info` LONGTEXT NOT NULL,
    `user_id` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    `kind` VARCHAR(16) NOT NULL,
    `timing` TEXT NOT NULL,
    `overlap` VARCHAR(32) NOT NULL DEFAULT 'SKIP',
    `catchup_window_ms` BIGINT UNSIGNED NULL,
    `jitter_ms` BIGINT UNSIGNED NULL,
    `start_at` DATETIME(3) NULL,
    `end_at` DATETIME(3) NULL,
    `max_runs` INTEGER UNSIGNED NULL,
    `paused` BOOLEAN NOT NULL DEFAULT FALSE,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    UNIQUE INDEX `recurring_task_name_namespace_key`(`name`, `namespace`),
    INDEX `recurring_task_user_id_id_idx`(`user_id`, `id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- A run's task points at its recurring task; no foreign key: deleting a recurring task keeps its
-- past runs (and this id, which says where they came from). The index serves "recent runs".
ALTER TABLE `task`
    ADD COLUMN `recurring_task_id` BIGINT UNSIGNED NULL,
    ADD INDEX `task_recurring_task_id_id_idx`(`recurring_task_id`, `id`),
    ALGORITHM=INPLACE, LOCK=NONE;
