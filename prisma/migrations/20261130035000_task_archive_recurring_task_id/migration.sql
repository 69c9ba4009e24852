-- task_archive keeps every column of task (retention refuses to archive while one is missing):
-- recurring_task_id came with 20261130030000_recurring_task.
ALTER TABLE `task_archive` ADD COLUMN `recurring_task_id` BIGINT UNSIGNED NULL;
