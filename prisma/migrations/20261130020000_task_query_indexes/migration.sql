-- Indexes that match every query nightwatch makes on `task` (issue 11), so none of them sorts or
-- walks rows it does not return however large the table grows. Each page's is an equality prefix
-- followed by `id`, the order every page is read in (test/integration/query-plans.test.ts checks the plans):
--   (status, id)                        existing: the dispatcher's page (status = 'Normal' AND id > ?)
--                                       and reconcile's, one status at a time
--   (user_id, id)                       existing: GET /tasks
--   (user_id, status, id)               GET /tasks?status=; the per-user count of Pending/Running
--                                       rows and the per-user page of Normal rows
--   (user_id, namespace, id)            GET /tasks?namespace=
--   (user_id, status, namespace, id)    GET /tasks?status=&namespace=
--   (finished_at, status)               retention: rows final for longer than RETENTION_AFTER, oldest
--                                       first, and its dry-run count, from the index alone (finished_at
--                                       first, so it never competes with (status, id) for the pages)
-- Built online: rows can be inserted and updated while the indexes are built.
ALTER TABLE `task`
    ADD INDEX `task_user_id_status_id_idx`(`user_id`, `status`, `id`),
    ADD INDEX `task_user_id_namespace_id_idx`(`user_id`, `namespace`, `id`),
    ADD INDEX `task_user_id_status_namespace_id_idx`(`user_id`, `status`, `namespace`, `id`),
    ADD INDEX `task_finished_at_status_idx`(`finished_at`, `status`),
    ALGORITHM=INPLACE, LOCK=NONE;
