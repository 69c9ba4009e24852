-- CreateIndex
CREATE INDEX `task_user_id_id_idx` ON `task`(`user_id`, `id`);
