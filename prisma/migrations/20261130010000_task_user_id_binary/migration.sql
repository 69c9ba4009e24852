-- user_id is compared byte for byte: `Alice` and `alice`, or `josé` and `jose`, are different users.
-- The table's default collation (utf8mb4_unicode_ci) made them one user, sharing tasks.
-- MODIFY rebuilds the index on (user_id, id) with the new collation.
ALTER TABLE `task` MODIFY `user_id` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
