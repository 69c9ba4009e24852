-- CreateTable
CREATE TABLE `task` (
    `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `name` VARCHAR(253) NOT NULL,
    `namespace` VARCHAR(253) NOT NULL,
    `info` LONGTEXT NOT NULL,
    `status` VARCHAR(32) NOT NULL DEFAULT 'Normal',
    `user_id` VARCHAR(64) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `reason` TEXT NULL,
    `attempt` INTEGER UNSIGNED NOT NULL DEFAULT 1,
    `started_at` DATETIME(3) NULL,
    `finished_at` DATETIME(3) NULL,

    INDEX `task_status_id_idx`(`status`, `id`),
    UNIQUE INDEX `task_name_namespace_key`(`name`, `namespace`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
